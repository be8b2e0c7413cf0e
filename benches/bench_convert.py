"""Conversion benchmark: ours (``slaf.convert``) vs slafdb 0.5.2's ``SLAFConverter``.

Generates an h5ad of negative-binomial-like counts (the model of ``benches/synthetic.py``;
CSR X written chunk by chunk with anndata, so generation itself stays in bounded memory), then
converts it with both tools in child processes, measuring wall time and the peak resident
memory of each child's process tree (psutil, sampled every 50 ms). The input is read once
before timing so that both tools find it in the page cache; with ``--repeat N`` the tools take
turns N times and the median of each is reported. The load average is printed before and after
(other work on the machine slows both tools).

Usage::

    python benches/bench_convert.py --cells 100000 --genes 20000 --nnz-per-cell 1500 \\
        [--workdir /tmp/bench-convert] [--slafdb-python .venv-slafdb/bin/python] [--ours-python PY]
        [--only ours|slafdb] [--repeat N] [--generate-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benches"))
from synthetic import add_scale_arguments  # noqa: E402

OURS = """
import sys, slaf
slaf.convert(sys.argv[1], sys.argv[2], chunk_size=int(sys.argv[3]), overwrite=True)
"""
SLAFDB = """
import sys, logging
logging.disable(logging.CRITICAL)
from slaf.data import SLAFConverter
SLAFConverter(chunked=True, chunk_size=int(sys.argv[3])).convert(sys.argv[1], sys.argv[2])
"""


def write_h5ad(path: Path, n_cells: int, n_genes: int, nnz_per_cell: float, seed: int) -> int:
    """Writes the synthetic h5ad chunk by chunk; returns its non-zero count."""
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    from synthetic import CELL_TYPES, CHUNK, _chunks, _gene_model

    rng = np.random.default_rng(seed)
    rates, markers = _gene_model(n_genes, nnz_per_cell, rng)
    types = rng.integers(0, len(CELL_TYPES), size=n_cells)
    depth = rng.lognormal(0.0, 0.35, size=n_cells).astype(np.float32)
    nnz = 0
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        x = None
        for cells, genes, values in _chunks(n_cells, n_genes, rates, markers, types, depth, rng):
            # _chunks yields CHUNK cells at a time, rows ascending: one CSR block per chunk.
            start = (int(cells[0]) // CHUNK) * CHUNK
            stop = min(n_cells, start + CHUNK)
            block = sp.csr_matrix(
                (values.astype(np.float32), (cells - start, genes.astype(np.int64))),
                shape=(stop - start, n_genes),
            )
            nnz += block.nnz
            if x is None:
                write_elem(f, "X", block)
                x = sparse_dataset(f["X"])
            else:
                x.append(block)
        obs = pd.DataFrame(
            {"cell_type": pd.Categorical(np.array(CELL_TYPES)[types])},
            index=[f"cell{i}" for i in range(n_cells)],
        )
        var = pd.DataFrame(index=[f"GENE{i}" for i in range(n_genes)])
        write_elem(f, "obs", obs)
        write_elem(f, "var", var)
        for group in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, group, {})
    assert ad.read_h5ad(path, backed="r").shape == (n_cells, n_genes)
    return nnz


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """Runs `cmd`; returns (seconds, peak RSS of the process tree in MiB, exit status)."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return elapsed, peak / 2**20, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--chunk-size", type=int, default=2000, help="cells per chunk, ours")
    parser.add_argument(
        "--slafdb-chunk-size", type=int, default=5000, help="cells per chunk, slafdb (its default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-convert"))
    parser.add_argument("--ours-python", default=sys.executable)
    parser.add_argument("--slafdb-python", help="default: .venv-slafdb (made on first use)")
    parser.add_argument("--only", choices=("ours", "slafdb"), help="run one converter only")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (median reported)")
    parser.add_argument("--generate-only", action="store_true", help="only write the h5ad")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.slafdb_python is None and args.only != "ours" and not args.generate_only:
        from suite.tools import ensure_slafdb

        args.slafdb_python = str(ensure_slafdb())
    h5ad = args.workdir / f"synthetic_{args.cells}x{args.genes}.h5ad"
    if not h5ad.exists():
        t = time.perf_counter()
        nnz = write_h5ad(h5ad, args.cells, args.genes, args.nnz_per_cell, args.seed)
        print(f"generated {h5ad} ({nnz:,} non-zeros) in {time.perf_counter() - t:.0f} s")
    size = h5ad.stat().st_size / 2**30
    print(f"input: {args.cells:,} cells × {args.genes:,} genes, {size:.2f} GiB h5ad")
    if args.generate_only:
        return

    with open(h5ad, "rb") as f:  # into the page cache, for both tools alike
        while f.read(1 << 24):
            pass
    runs = [
        ("ours", args.ours_python, OURS, args.chunk_size),
        ("slafdb 0.5.2", args.slafdb_python, SLAFDB, args.slafdb_chunk_size),
    ]
    if args.only:
        runs = [r for r in runs if r[0].split()[0] == args.only]
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in runs}
    for _ in range(args.repeat):
        for name, python, script, chunk_size in runs:
            out = args.workdir / f"{name.split()[0]}.slaf"
            if out.exists():
                shutil.rmtree(out)
            cmd = [python, "-c", script, str(h5ad), str(out), str(chunk_size)]
            seconds, peak, status = measure(cmd)
            samples[name].append((seconds, peak))
            state = "ok" if status == 0 else f"FAILED ({status})"
            print(
                f"{name:>14}: {seconds:8.1f} s   peak RSS {peak:8.0f} MiB   "
                f"(chunk {chunk_size} cells) {state}",
                flush=True,
            )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    results = {
        name: (statistics.median(t for t, _ in runs_), statistics.median(m for _, m in runs_))
        for name, runs_ in samples.items()
    }
    if len(results) == 2:
        (t_ours, m_ours), (t_db, m_db) = results["ours"], results["slafdb 0.5.2"]
        label = f"median of {args.repeat}: " if args.repeat > 1 else ""
        print(
            f"{label}ours {t_ours:.1f} s / {m_ours:.0f} MiB, slafdb {t_db:.1f} s / {m_db:.0f} MiB"
        )
        print(f"speed-up: {t_db / t_ours:.2f}×   memory: ours/slafdb = {m_ours / m_db:.2f}")


if __name__ == "__main__":
    main()
