"""Long CLI jobs draw a progress bar on a terminal and nothing when piped or --quiet."""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import anndata as ad
import pytest

from slaf import _native

SLAF = [sys.executable, "-m", "slaf.cli"]


def on_terminal(args: list[str]) -> str:
    """What ``args`` prints on a 120-column pseudo-terminal (stdout and stderr together)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_convert_and_index_show_progress_on_a_terminal(
    halves: tuple[ad.AnnData, Path, Path], tmp_path: Path
) -> None:
    _, first, _ = halves
    out = tmp_path / "out.slaf"
    shown = on_terminal([*SLAF, "convert", str(first), str(out)])
    assert "cells/s" in shown and "gene index" in shown and "rows/s" in shown
    assert "100%" in shown
    shown = on_terminal([*SLAF, "index", str(out)])
    assert "gene index" in shown and "100%" in shown


def test_piped_or_quiet_output_stays_clean(
    halves: tuple[ad.AnnData, Path, Path], tmp_path: Path
) -> None:
    _, first, _ = halves
    out = tmp_path / "out.slaf"
    done = subprocess.run(
        [*SLAF, "convert", str(first), str(out)], capture_output=True, text=True, check=True
    )
    assert done.stderr == "" and done.stdout.count("\n") == 1
    done = subprocess.run([*SLAF, "index", str(out)], capture_output=True, text=True, check=True)
    assert done.stderr == "" and done.stdout.startswith(f"indexed {out}")
    shown = on_terminal([*SLAF, "index", "--quiet", str(out)])
    assert "rows/s" not in shown and "indexed" in shown


def test_a_failing_progress_callback_does_not_fail_the_build(
    small_dataset: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A bar that raises is reported on stderr and dropped: the index is still built."""
    copy = tmp_path / "copy.slaf"
    shutil.copytree(small_dataset, copy)
    calls = []

    def broken(done: int, total: int) -> None:
        calls.append((done, total))
        raise RuntimeError("the bar broke")

    _native.NativeWriter.index_gene_major(str(copy), broken)
    assert calls and calls[-1][0] == calls[-1][1]
    assert _native.NativeDataset(str(copy)).gene_major_status() == "fresh"
    assert "the bar broke" in capfd.readouterr().err
