"""The machine and the versions a run used, recorded with its results."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

from suite.tools import REPO, Tool, _env

PACKAGES = (
    "anndata",
    "scanpy",
    "tiledbsoma",
    "torch",
    "duckdb",
    "polars",
    "pylance",
    "pyarrow",
    "scdataset",
)


def machine() -> dict:
    """CPU model, cores, RAM and load average of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        kib = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(kib / 2**20, 1),
        "os": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _run(command: list, slafdb: bool = False) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=_env(slafdb), cwd=REPO)
    return done.stdout.strip() if done.returncode == 0 else ""


def versions(tools: list[Tool]) -> dict:
    """Versions of python, ours (git commit and the module file, which tells the build), slafdb
    and the peers' packages."""
    ours = next((str(t.python) for t in tools if t.key == "ours" and t.python), sys.executable)
    # One interpreter start for all three: where ours is imported from, the profile that built
    # it, and whether it reads local files through io_uring.
    probe = (
        "import slaf, slaf._native as n; print(slaf.__file__); print(n.BUILD_PROFILE); "
        "print(n.io_uring_reads())"
    )
    module, build, uring = ([*_run([ours, "-c", probe]).split("\n"), "", ""])[:3]
    # The commit of the checkout that build comes from (PYTHONPATH may name another worktree).
    checkout = Path(module).parent if module else REPO
    out = {
        "python": platform.python_version(),
        # "-dirty" when the checkout had changes not committed.
        "slaf_commit": _run(["git", "-C", str(checkout), "describe", "--always", "--dirty"]),
        "slaf_module": module,
        "slaf_build": build,
        "slaf_io_uring": uring == "True",
    }
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    slafdb = next((t for t in tools if t.key == "slafdb" and t.python), None)
    probe = "import importlib.metadata as m; print(m.version('slafdb'))"
    out["slafdb"] = _run([slafdb.python, "-c", probe], slafdb=True) if slafdb else None
    return out
