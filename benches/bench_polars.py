"""Polars front-end benchmark: ``scan_slaf`` with and without predicate pushdown, the per-cell
list view, and tokenization through the expression plugin.

Queries (each timed warm, median of ``--reps`` runs), on the generated dataset of
``benches/synthetic.py``:

* the values of the first 1,000 cells from the expression table,
  ``filter(cell_integer_id < 1000).select(sum(value))``: pushed down to Lance, versus the same
  predicate written so it cannot be translated (``cast`` first: the scan reads every row and
  Polars filters), versus pylance's own ``to_table(filter=…)``; rows read by each;
* 100 cells chosen by a metadata predicate as lists (``cells_x`` with ``cell_filter``) versus
  the expression table semi-joined to the filtered cells in Polars;
* Geneformer and scGPT tokens for 20,000 cells through ``sp.geneformer`` / ``sp.scgpt`` over
  ``cells_x`` (reading included): cells/s.

Usage::

    python benches/bench_polars.py --cells 100000 --genes 20000 --nnz-per-cell 1500
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lance
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slaf.polars as sp

from synthetic import add_scale_arguments, ensure_dataset


def timed(run: Callable[[], object], reps: int) -> tuple[float, object]:
    """Median wall time in seconds over ``reps`` runs after one warm-up, and the last result."""
    result = run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_scale_arguments(parser)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tokenize-cells", type=int, default=20_000)
    args = parser.parse_args()
    path = ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    config = json.loads((path / "config.json").read_text())
    print(f"dataset {path}: {config['n_cells']:,} cells x {config['n_genes']:,} genes")

    print("\n-- first 1,000 cells' values: sum(value) where cell_integer_id < 1000")
    results = {}
    for name, predicate in [
        ("pushed down", pl.col("cell_integer_id") < 1000),
        ("not pushed (Polars filters)", pl.col("cell_integer_id").cast(pl.Int64) < 1000),
    ]:
        stats = sp.ScanStats()

        def run(predicate: pl.Expr = predicate, stats: sp.ScanStats = stats) -> float:
            stats.rows_read = 0
            lf = sp.scan_slaf(path, "expression", stats=stats).filter(predicate)
            return lf.select(pl.col("value").sum()).collect().item()

        secs, total = timed(run, args.reps)
        results[name] = secs
        rows = stats.rows_read
        print(f"  {name:<30} {secs * 1e3:9.1f} ms  rows read {rows:>12,}  sum {total:.6g}")
    expression = lance.dataset(str(path / config["tables"]["expression"]))
    secs, _ = timed(
        lambda: pl.from_arrow(
            expression.to_table(columns=["value"], filter="cell_integer_id < 1000")
        )["value"].sum(),
        args.reps,
    )
    print(f"  {'pylance to_table(filter=...)':<30} {secs * 1e3:9.1f} ms")
    ratio = results["not pushed (Polars filters)"] / results["pushed down"]
    print(f"  pushdown speed-up: {ratio:.1f}x")

    print("\n-- 100 cells chosen by a metadata predicate, as per-cell lists")
    cells = sp.scan_slaf(path, "cells").select("cell_integer_id", "cell_type").collect()
    kind = cells["cell_type"][0]
    chosen = cells.filter(pl.col("cell_type") == kind)["cell_integer_id"].head(100).to_list()
    cell_filter = f"cell_type = '{kind}' AND cell_integer_id <= {max(chosen)}"
    secs_lists, lists = timed(
        lambda: sp.scan_slaf(path, "cells_x", cell_filter=cell_filter).collect(), args.reps
    )
    secs_join, joined = timed(
        lambda: (
            sp.scan_slaf(path, "expression")
            .join(
                sp.scan_slaf(path, "cells").filter(
                    (pl.col("cell_type") == kind) & (pl.col("cell_integer_id") <= max(chosen))
                ),
                on="cell_integer_id",
                how="semi",
            )
            .collect()
        ),
        1,
    )
    assert lists["values"].list.len().sum() == joined.height
    print(f"  cells_x + cell_filter        {secs_lists * 1e3:9.1f} ms  ({lists.height} cells)")
    print(f"  expression semi-join cells   {secs_join * 1e3:9.1f} ms  ({joined.height:,} rows)")
    print(f"  ratio: {secs_join / secs_lists:.1f}x")

    print(f"\n-- tokenization of {args.tokenize_cells:,} cells over cells_x (reading included)")
    head = sp.scan_slaf(path, "cells_x").head(args.tokenize_cells)
    for name, expr in [
        ("geneformer v1, max 2048", sp.geneformer(max_genes=2048)),
        ("scgpt, max 1200, 51 bins", sp.scgpt(cell_ids="cell_integer_id")),
        ("read cells_x only", None),
    ]:
        query = (
            head.select(pl.col("values").list.len().sum()) if expr is None else head.select(t=expr)
        )
        secs, _ = timed(query.collect, args.reps)
        print(f"  {name:<28} {secs:7.2f} s  {args.tokenize_cells / secs:>10,.0f} cells/s")


if __name__ == "__main__":
    main()
