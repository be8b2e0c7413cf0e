"""DuckDB extension benchmark: SLAF through ``slaf_scan`` / ``slaf_slice`` versus the same data
as Parquet written by DuckDB itself in the same run.

Queries (each timed warm, median of ``--reps`` rounds in which every query runs once, so that
peers take turns):

* full aggregate ``count(*), sum(value)`` over the expression table: rows/s and Parquet/SLAF
  ratio (target ≥ 1×);
* 100 cells chosen by a metadata predicate: ``slaf_slice(cell_filter := …)`` versus
  ``slaf_scan(…, 'expression')`` joined to the cells (target < 50 ms, ≥ 20× faster), and the same
  join over Parquet;
* all values of 10 genes (the known weak spot of a cell-major layout).

Usage::

    CARGO_TARGET_DIR=/work/cargo-target-release SLAF_PROFILE=release bash .ci/build-extension
    python benches/bench_duckdb.py --cells 100000 --genes 20000 --nnz-per-cell 1500
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import add_scale_arguments, ensure_dataset

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPOSITORY = REPO / "build" / "repository"


def connect(extension_dir: Path, threads: int | None) -> duckdb.DuckDBPyConnection:
    """A connection with the extension installed from the local repository and loaded."""
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"SET extension_directory = '{extension_dir}'")
    con.execute(f"INSTALL slaf FROM '{REPOSITORY}'")
    con.execute("LOAD slaf")
    if threads:
        con.execute(f"SET threads = {threads}")
    return con


def main() -> None:
    """Runs the benchmark and prints a table of timings and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_scale_arguments(parser)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dataset", type=Path, default=None, help="an existing dataset instead")
    args = parser.parse_args()

    path = args.dataset or ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    work = Path(tempfile.mkdtemp(prefix="slaf_bench_duckdb_"))
    try:
        con = connect(work / "extensions", args.threads)
        info = con.execute(f"SELECT n_cells, n_genes, nnz FROM slaf_info('{path}')").fetchone()
        n_cells, n_genes, nnz = info
        p = str(path)
        expr, cells = work / "expression.parquet", work / "cells.parquet"
        start = time.perf_counter()
        con.execute(
            f"COPY (SELECT * FROM slaf_scan('{p}', 'expression')) TO '{expr}' (FORMAT parquet)"
        )
        con.execute(f"COPY (SELECT * FROM slaf_scan('{p}', 'cells')) TO '{cells}' (FORMAT parquet)")
        print(f"wrote Parquet copies in {time.perf_counter() - start:.1f} s")

        # 100 cells by a metadata predicate: the first 100 cell ids of one type and donor.
        pick = "cell_type = 'B cell' AND donor_id = 'D1' AND cell_integer_id < " + str(
            con.execute(
                f"SELECT max(cell_integer_id) + 1 FROM (SELECT cell_integer_id FROM "
                f"slaf_scan('{p}', 'cells') WHERE cell_type = 'B cell' AND donor_id = 'D1' "
                f"ORDER BY cell_integer_id LIMIT 100)"
            ).fetchone()[0]
        )
        genes = ", ".join(str(g) for g in range(0, n_genes, n_genes // 10)[:10])
        queries: list[tuple[str, str]] = [
            (
                "full sum, slaf_scan",
                f"SELECT count(*), sum(value) FROM slaf_scan('{p}', 'expression')",
            ),
            ("full sum, parquet", f"SELECT count(*), sum(value) FROM '{expr}'"),
            (
                "100 cells, slaf_slice",
                f"SELECT count(*), sum(value) FROM slaf_slice('{p}', cell_filter := "
                f"'{pick.replace(chr(39), chr(39) * 2)}')",
            ),
            (
                "100 cells, slaf_scan+join",
                f"SELECT count(*), sum(value) FROM slaf_scan('{p}', 'expression') e "
                f"JOIN slaf_scan('{p}', 'cells') c USING (cell_integer_id) WHERE {pick}",
            ),
            (
                "100 cells, parquet join",
                f"SELECT count(*), sum(value) FROM '{expr}' e JOIN '{cells}' c "
                f"USING (cell_integer_id) WHERE {pick}",
            ),
            (
                "10 genes, slaf_slice",
                f"SELECT count(*), sum(value) FROM slaf_slice('{p}', genes := [{genes}])",
            ),
            (
                "10 genes, slaf_scan",
                f"SELECT count(*), sum(value) FROM slaf_scan('{p}', 'expression') "
                f"WHERE gene_integer_id IN ({genes})",
            ),
            (
                "10 genes, parquet",
                f"SELECT count(*), sum(value) FROM '{expr}' WHERE gene_integer_id IN ({genes})",
            ),
        ]
        # Peers take turns within each round, so a slow spell of a shared machine falls on
        # both sides of a ratio rather than on one.
        samples: dict[str, list[float]] = {name: [] for name, _ in queries}
        results: dict[str, object] = {}
        for round_ in range(args.reps + 1):  # round 0 warms up
            for name, sql in queries:
                start = time.perf_counter()
                results[name] = con.execute(sql).fetchall()
                if round_:
                    samples[name].append(time.perf_counter() - start)
        times = {name: statistics.median(s) for name, s in samples.items()}
        for name, _ in queries:
            print(f"{name:<28}{times[name] * 1e3:>10.1f} ms   {results[name]}", flush=True)

        assert results["full sum, slaf_scan"] == results["full sum, parquet"]
        assert results["100 cells, slaf_slice"] == results["100 cells, slaf_scan+join"]
        assert results["10 genes, slaf_slice"] == results["10 genes, parquet"]

        print(f"\ndataset: {n_cells:,} cells × {n_genes:,} genes, {nnz:,} non-zeros, {path}")
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        print(f"duckdb {duckdb.__version__}, threads = {threads}")
        full = times["full sum, slaf_scan"]
        print(f"full scan: {nnz / full / 1e6:,.0f} M rows/s through slaf_scan")
        print(
            f"  parquet time / slaf time = {times['full sum, parquet'] / full:.2f}× (target ≥ 1×)"
        )
        sl = times["100 cells, slaf_slice"]
        print(f"100-cell slice: {sl * 1e3:.1f} ms (target < 50 ms)")
        join = times["100 cells, slaf_scan+join"]
        print(f"  slaf_scan+join / slaf_slice = {join / sl:.1f}× (target ≥ 20×)")
        print(f"  parquet join / slaf_slice = {times['100 cells, parquet join'] / sl:.1f}×")
        g = times["10 genes, slaf_slice"]
        scan, parquet = times["10 genes, slaf_scan"], times["10 genes, parquet"]
        print(
            f"10 genes: slaf_slice {g * 1e3:.0f} ms, slaf_scan {scan * 1e3:.0f} ms, "
            f"parquet {parquet * 1e3:.0f} ms"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
