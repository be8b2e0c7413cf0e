"""The tools compared and how each is run: the interpreter it lives in, its environment, and
the data it needs built (slafdb's virtual env, the gene-major copy, the TileDB-SOMA experiment,
the copy slafdb's converter writes, the Parquet copy).

slafdb shares our import name ``slaf``, so it always runs in its own interpreter
(``.venv-slafdb``) with ``PYTHONPATH`` stripped; every other tool runs in this interpreter with
``PYTHONPATH`` passed through (so that ``PYTHONPATH=<release build>/python`` benchmarks that
build of ours).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SLAFDB_VENV = REPO / ".venv-slafdb"


@dataclass(frozen=True)
class Tool:
    """One column of the comparison.

    Parameters
    ----------
    key
        Its name in the JSON and on the command line.
    label
        Its column heading.
    python
        The interpreter that runs it; None when it is not installed.
    missing
        Why it cannot run at all (shown in each of its cells), when ``python`` is None.
    """

    key: str
    label: str
    python: Path | None
    missing: str = ""

    @property
    def is_slafdb(self) -> bool:
        """Whether it needs ``PYTHONPATH`` stripped (it imports a different ``slaf``)."""
        return self.key == "slafdb"


def ensure_slafdb(torch: bool = False) -> Path:
    """``.venv-slafdb`` with slafdb 0.5.2, made on first use.

    Parameters
    ----------
    torch
        Also install what slafdb's loader needs but does not declare (torch, psutil).

    Returns
    -------
    Path
        Its interpreter.
    """
    python = SLAFDB_VENV / "bin" / "python"
    if not python.exists():
        print("creating .venv-slafdb with slafdb==0.5.2 (first run only)", flush=True)
        venv.create(SLAFDB_VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "slafdb==0.5.2"], check=True)
    probe = "import torch, psutil" if torch else "import slaf"
    if subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
        print("installing slafdb==0.5.2 and torch into", SLAFDB_VENV, flush=True)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "slafdb==0.5.2", "torch==2.15.0", "psutil"],
            check=True,
        )
    return python


def _importable(python: Path, module: str, slafdb: bool = False) -> bool:
    probe = [python, "-c", f"import {module}"]
    return subprocess.run(probe, capture_output=True, env=_env(slafdb)).returncode == 0


def _env(slafdb: bool) -> dict[str, str]:
    env = dict(os.environ)
    if slafdb:
        env.pop("PYTHONPATH", None)
    return env


def available_tools() -> list[Tool]:
    """Every tool of the suite, in column order; one that is not installed is kept, marked.

    Nothing is installed here: a missing ``.venv-slafdb`` marks slafdb "not installed".
    """
    here = Path(sys.executable)
    slafdb = SLAFDB_VENV / "bin" / "python"
    tools = [
        Tool("ours", "ours (slaf)", here),
        Tool("ours_no_cache", "ours, cell cache off", here),
        # Marked at run time when there is no copy (no slafdb to write it).
        Tool("ours_on_slafdb", "ours on slafdb's copy", here),
    ]
    if slafdb.exists() and _importable(slafdb, "slaf", slafdb=True):
        tools.append(Tool("slafdb", "slafdb 0.5.2", slafdb))
    else:
        tools.append(Tool("slafdb", "slafdb 0.5.2", None, "not installed"))
    tools.append(Tool("anndata_backed", "anndata backed", here))
    tools.append(Tool("anndata_memory", "anndata in memory", here))
    for key, label, module in (
        ("soma", "TileDB-SOMA", "tiledbsoma"),
        ("parquet_duckdb", "Parquet + DuckDB", "duckdb"),
        ("parquet_pyarrow", "Parquet + pyarrow", "pyarrow.dataset"),
        ("scdataset", "scDataset", "scdataset"),
    ):
        ok = _importable(here, module)
        tools.append(Tool(key, label, here if ok else None, "" if ok else "not installed"))
    # annbatch 0.1 requires Python >= 3.12; this project's interpreter is 3.11.
    tools.append(Tool("annbatch", "annbatch", None, "not installable on Python 3.11"))
    return tools


# Given to every runner: its own peak RSS. ru_maxrss would not do: a child keeps across exec
# the high-water mark of the parent it was forked from. VmHWM is this process image's alone.
PEAK_MIB = r"""
def _peak_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024
"""


def add_ours_python_argument(parser: argparse.ArgumentParser) -> None:
    """``--ours-python``: the interpreter whose ``slaf`` is ours (default: this one), so a
    benchmark can time a release build installed elsewhere.

    Parameters
    ----------
    parser
        The benchmark's argument parser.
    """
    parser.add_argument(
        "--ours-python",
        type=Path,
        default=Path(sys.executable),
        help="interpreter whose `slaf` is ours (e.g. a venv with a release wheel)",
    )


def run_fresh(
    python: Path, runner: str, args: list[str], slafdb: bool, timeout: float | None = None
) -> dict:
    """Run the script ``runner`` with ``args`` in a fresh ``python``.

    Parameters
    ----------
    python
        The interpreter.
    runner
        Python source whose last line of output is a JSON object; it may call
        ``_peak_mib()`` for its peak RSS in MiB.
    args
        Its ``sys.argv[1:]``.
    slafdb
        Strip ``PYTHONPATH``, so that slafdb imports its own ``slaf``, not ours.
    timeout
        Seconds before the run is killed and reported as failed.

    Returns
    -------
    dict
        The runner's JSON object, or ``{"error": ...}`` with the last line of its stderr.
    """
    try:
        done = subprocess.run(
            [python, "-c", PEAK_MIB + runner, *args],
            capture_output=True,
            text=True,
            env=_env(slafdb),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "crashed"
        return {"error": last[:160]}
    return json.loads(lines[-1])


# Builds the gene-major table in a fresh process; prints seconds and peak resident KiB
# (VmHWM: this process's own high-water mark, not inherited from the parent).
INDEXER = r"""
import sys, time
from slaf import _native
t = time.perf_counter()
_native.NativeWriter.index_gene_major(sys.argv[1])
seconds = time.perf_counter() - t
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(seconds, int(hwm.split()[1]))
"""


def ensure_indexed(plain: Path, python: Path) -> tuple[Path, float, float]:
    """A copy of the generated dataset with the gene-major table (``slaf index``).

    Parameters
    ----------
    plain
        The generated dataset.
    python
        The interpreter whose ``slaf`` builds the table.

    Returns
    -------
    tuple
        The copy, the index time and its peak memory in MiB (both 0 when it was there).
    """
    out = plain.with_name(plain.stem + ".gene_major.slaf")
    if (out / "config.json").exists() and "gene_major" in (out / "config.json").read_text():
        return out, 0.0, 0.0
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(plain, out)
    done = subprocess.run(
        [python, "-c", INDEXER, str(out)], check=True, capture_output=True, text=True
    )
    seconds, kib = done.stdout.split()
    return out, float(seconds), int(kib) / 1024


def ensure_soma(h5ad: Path, python: Path) -> tuple[Path | None, float]:
    """The h5ad ingested into a TileDB-SOMA experiment (once, next to it).

    Parameters
    ----------
    h5ad
        The generated data as h5ad.
    python
        An interpreter with tiledbsoma.

    Returns
    -------
    tuple
        The experiment (None when tiledbsoma is not installed) and the ingest time (0 when it
        was there).
    """
    out = h5ad.with_suffix(".soma")
    if (out / ".done").exists():
        return out, 0.0
    if not _importable(python, "tiledbsoma"):
        return None, 0.0
    if out.exists():
        shutil.rmtree(out)
    t = time.perf_counter()
    subprocess.run(
        [
            python,
            "-c",
            "import sys, tiledbsoma.io as io; "
            "io.from_h5ad(sys.argv[1], sys.argv[2], measurement_name='RNA')",
            str(out),
            str(h5ad),
        ],
        check=True,
    )
    seconds = time.perf_counter() - t
    (out / ".done").write_text(f"{seconds}\n")
    return out, seconds


# slafdb's converter, in its own interpreter; prints the seconds the conversion took.
SLAFDB_CONVERTER = r"""
import sys, time, logging
logging.disable(logging.CRITICAL)
from slaf.data import SLAFConverter
t = time.perf_counter()
SLAFConverter(chunked=True).convert(sys.argv[1], sys.argv[2])
print(time.perf_counter() - t)
"""


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ensure_slafdb_copy(h5ad: Path) -> tuple[Path | None, dict]:
    """The h5ad converted by slafdb 0.5.2's ``SLAFConverter(chunked=True)`` (once, next to it),
    for ours to read a dataset slafdb wrote.

    Parameters
    ----------
    h5ad
        The generated data as h5ad.

    Returns
    -------
    tuple
        The copy (None when ``.venv-slafdb`` is missing: nothing is installed here) and how it
        was made: ``convert_s`` (slafdb's conversion, measured when it was written) and
        ``bytes`` on disk.
    """
    out = h5ad.with_suffix(".slafdb.slaf")
    done = out / ".done"
    if done.exists():
        return out, json.loads(done.read_text())
    python = SLAFDB_VENV / "bin" / "python"
    if not (python.exists() and _importable(python, "slaf", slafdb=True)):
        return None, {}
    if out.exists():
        shutil.rmtree(out)
    print(f"converting {h5ad.name} with slafdb 0.5.2 (first run only) ...", flush=True)
    converted = subprocess.run(
        [python, "-c", SLAFDB_CONVERTER, str(h5ad), str(out)],
        check=True,
        capture_output=True,
        text=True,
        env=_env(slafdb=True),
    )
    info = {
        "written_by": "slafdb 0.5.2 SLAFConverter(chunked=True)",
        "convert_s": round(float(converted.stdout.split()[-1]), 3),
        "bytes": _bytes(out),
    }
    done.write_text(json.dumps(info) + "\n")
    return out, info


# The obs/var columns of the Parquet copy: the slaf_* statistics and start indices are ours.
_PARQUET_COLUMNS = {
    "cells": [
        "cell_id",
        "cell_integer_id",
        "cell_type",
        "donor_id",
        "n_genes_by_counts",
        "total_counts",
    ],
    "genes": ["gene_id", "gene_integer_id", "gene_symbol", "mt", "highly_variable"],
}


def ensure_parquet(dataset: Path) -> tuple[Path, dict]:
    """The dataset's tables as Parquet (once, next to it): ``expression.parquet`` (columns
    cell_integer_id, gene_integer_id, value, rows as stored, i.e. sorted by cell),
    ``cells.parquet`` and ``genes.parquet``, written by ``pyarrow.parquet.write_table`` with
    its defaults (row groups of up to 1,048,576 rows, snappy, min/max statistics per row group).

    Parameters
    ----------
    dataset
        Our dataset (its expression, cells and genes tables are copied).

    Returns
    -------
    tuple
        The folder and how it was made: ``write_s`` (reading the Lance tables and writing the
        files, measured when they were written), ``bytes`` and ``expression_bytes`` on disk,
        ``row_groups``, ``rows``, ``sorted_by_cell`` and the pyarrow version.
    """
    import lance
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    stem = dataset.name.split(".")[0]
    out = dataset.with_name(stem + ".parquet")
    done = out / "done.json"
    if done.exists():
        return out, json.loads(done.read_text())
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    print(f"writing {out.name} (Parquet copy, first run only) ...", flush=True)
    t = time.perf_counter()
    expression = lance.dataset(str(dataset / "expression.lance")).to_table(
        columns=["cell_integer_id", "gene_integer_id", "value"]
    )
    pq.write_table(expression, out / "expression.parquet")
    for name, columns in _PARQUET_COLUMNS.items():
        table = lance.dataset(str(dataset / f"{name}.lance")).to_table(columns=columns)
        pq.write_table(table.sort_by(columns[1]), out / f"{name}.parquet")
    seconds = time.perf_counter() - t
    cells = expression.column("cell_integer_id").to_numpy()
    metadata = pq.ParquetFile(out / "expression.parquet").metadata
    info = {
        "written_by": f"pyarrow {pa.__version__} parquet.write_table (defaults)",
        "write_s": round(seconds, 3),
        "bytes": _bytes(out),
        "expression_bytes": (out / "expression.parquet").stat().st_size,
        "rows": metadata.num_rows,
        "row_groups": metadata.num_row_groups,
        "sorted_by_cell": bool(np.all(cells[1:] >= cells[:-1])),
    }
    done.write_text(json.dumps(info) + "\n")
    return out, info
