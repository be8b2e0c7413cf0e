"""Give the native library inside a wheel DuckDB's extension footer, keeping RECORD true.

Usage: python .ci/seal_wheel.py <slaf-package-extension> WHEEL...

maturin writes the wheel; the footer's layout is the packaging tool's (one rule, in
extension/src/bin/package.rs), so the library is taken out, sealed by that tool and put back.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

LIBRARY = "slaf/_native.abi3.so"


def record_line(name: str, data: bytes) -> str:
    """A RECORD row as the wheel spec writes it: urlsafe base64 sha256 without padding."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def seal(tool: Path, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as source, tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "lib.so"
        library.write_bytes(source.read(LIBRARY))
        subprocess.run([str(tool), "--in-place", str(library)], check=True, capture_output=True)
        sealed = library.read_bytes()
        staged = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as out:
            for item in source.infolist():
                data = source.read(item)
                if item.filename == LIBRARY:
                    data = sealed
                elif item.filename.endswith(".dist-info/RECORD"):
                    rows = [
                        record_line(LIBRARY, sealed) if row.startswith(f"{LIBRARY},") else row
                        for row in data.decode().splitlines()
                    ]
                    data = ("\n".join(rows) + "\n").encode()
                out.writestr(item, data)
    staged.replace(wheel)
    print(f"{wheel}: {wheel.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    for path in sys.argv[2:]:
        seal(Path(sys.argv[1]), Path(path))
