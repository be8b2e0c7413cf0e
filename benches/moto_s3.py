"""A real S3 API on loopback for tests and benchmarks: ``moto_server`` (from ``moto[server]``)
on a free port, a bucket, datasets uploaded to it, and its request log to count what reached
the store.

>>> with MotoS3(Path("/tmp/x")) as s3:                                   # doctest: +SKIP
...     s3.create_bucket("slaf-test")
...     uri = s3.upload(Path("pbmc.slaf"), "slaf-test", "pbmc.slaf")
...     data = SLAFArray(uri, storage_options=s3.options)
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The AWS variable each storage option corresponds to.
_VARIABLES = {
    "aws_endpoint": "AWS_ENDPOINT_URL",
    "aws_allow_http": "AWS_ALLOW_HTTP",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_region": "AWS_REGION",
}

#: The moto_server script installed next to this interpreter.
MOTO_SERVER = Path(sys.executable).with_name("moto_server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3:
    """A ``moto_server`` process, stopped on ``close()`` (or leaving a ``with`` block).

    Parameters
    ----------
    log_dir
        Where its request log is written.
    """

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"moto-{self.port}.log"
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"moto_server did not start on port {self.port}") from None
                time.sleep(0.1)
        self.client = self._client()

    def _client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    @property
    def options(self) -> dict[str, str]:
        """``storage_options`` that reach this server."""
        return {
            "aws_endpoint": self.endpoint,
            "aws_allow_http": "true",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "aws_region": "us-east-1",
        }

    @property
    def environment(self) -> dict[str, str]:
        """The standard AWS variables that reach this server (the same as ``options``)."""
        return {_VARIABLES[key]: value for key, value in self.options.items()}

    def create_bucket(self, bucket: str) -> None:
        self.client.create_bucket(Bucket=bucket)

    def upload(self, folder: Path, bucket: str, prefix: str) -> str:
        """Upload every file under ``folder`` (hidden files, such as a writer's lock, left out)
        to ``s3://bucket/prefix``; returns that URI."""
        for file in sorted(folder.rglob("*")):
            relative = file.relative_to(folder)
            if file.is_file() and not any(p.startswith(".") for p in relative.parts):
                self.client.upload_file(str(file), bucket, f"{prefix}/{relative}")
        return f"s3://{bucket}/{prefix}"

    def requests(self) -> list[str]:
        """``METHOD /bucket/key`` of every request so far, in order."""
        time.sleep(0.2)  # the server logs a request after answering it
        # Lines look like `127.0.0.1 - - [date] "GET /bucket/key HTTP/1.1" 200 -`, the request
        # coloured by status with ANSI codes.
        lines = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text()).splitlines()
        return [line.split('"')[1].split(" HTTP")[0] for line in lines if ' "' in line]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._out.close()

    def __enter__(self) -> MotoS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
