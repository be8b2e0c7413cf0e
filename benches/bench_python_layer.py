"""Benchmark the Python layer (``SLAFArray.query``, ``read_slaf``): ours vs slafdb 0.5.2 vs
anndata reading the same data from an h5ad (backed mode, and in memory as the bound).

Every (tool, query) runs in a fresh interpreter on the same generated dataset (warm page
cache): open, one warm-up, then ``--reps`` timed runs; the median and the process's peak RSS are
reported, with a checksum of each result so that a tool giving a different answer is flagged
instead of timed as a win. slafdb runs from ``.venv-slafdb`` (it shares our import name).

Usage::

    .venv/bin/python benches/bench_python_layer.py [--cells 100000 --genes 20000 --reps 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite.report import cell_from, flag_mismatches, print_table
from suite.tools import add_ours_python_argument, ensure_slafdb, run_fresh

from synthetic import add_scale_arguments, ensure_dataset, ensure_h5ad

# Runs in a fresh interpreter: argv = tool, query, slaf path, h5ad path, params (JSON), reps.
RUNNER = r"""
import json, statistics, sys, time
import numpy as np
tool, query, slaf_path, h5ad_path, params, reps = sys.argv[1:7]
params, reps = json.loads(params), int(reps)
mask_type, cell = params["mask_type"], params["cell"]
t0 = time.perf_counter()
if tool in ("ours", "slafdb"):
    from slaf import SLAFArray
    from slaf.integrations.anndata import read_slaf
    data = SLAFArray(slaf_path)
    if hasattr(data, "wait_for_metadata"):
        data.wait_for_metadata()
    adata = read_slaf(slaf_path) if query in ("lazy_slice", "mean") else None
else:
    import anndata as ad
    adata = ad.read_h5ad(h5ad_path, backed="r" if tool == "anndata_backed" else None)
open_s = time.perf_counter() - t0

def frame_sum(df, column):
    rows = df.height if hasattr(df, "height") else len(df)
    return [int(rows), float(np.asarray(df[column]).sum())]

def csr_sum(x):
    return [int(x.nnz), float(x.sum())]

def metadata():
    if adata is None:
        df = data.query(params["metadata_sql"])
        return [int(df["n"].sum()), round(float(df["avg_counts"].sum()), 2)]
    obs = adata.obs[adata.obs["donor_id"] == "D3"]
    g = obs.groupby("cell_type", observed=True)["total_counts"]
    return [int(g.size().sum()), round(float(g.mean().sum()), 2)]

def one_cell():
    if adata is None:
        return frame_sum(data.query(params["one_cell_sql"]), "value")
    return csr_sum(adata.X[cell : cell + 1])

def join():
    if adata is None:
        return frame_sum(data.query(params["join_sql"]), "value")
    obs = adata.obs
    mask = ((obs["cell_type"] == "NK cell") & (obs["donor_id"] == "D2")
            & (obs["total_counts"] > params["threshold"])).to_numpy()
    return csr_sum(adata[mask].X)

def lazy_slice():
    sub = adata[(adata.obs.cell_type == mask_type).to_numpy()][:1000]
    x = sub.X
    x = x.compute() if hasattr(x, "compute") else x
    return csr_sum(x)

def mean():
    if tool == "anndata_backed":  # backed X has no reductions: stream it in chunks
        total = np.zeros(adata.n_vars)
        for chunk, _, _ in adata.chunked_X(10_000):
            total += np.asarray(chunk.sum(axis=0)).ravel()
        m = total / adata.n_obs
    else:
        m = np.asarray(adata.X.mean(axis=0)).ravel()
    return [int(m.size), round(float(m.sum()), 3)]

run = {"metadata": metadata, "one_cell": one_cell, "join": join,
       "lazy_slice": lazy_slice, "mean": mean}[query]
try:
    check = run()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        check = run()
        times.append(time.perf_counter() - t)
    out = {"open_s": open_s, "median_s": statistics.median(times), "times": times, "check": check}
except Exception as e:  # a peer that cannot run a query is marked, not dropped
    out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"}
out["peak_mib"] = _peak_mib()  # run_fresh defines it
print(json.dumps(out))
"""

QUERIES = {
    "metadata": "metadata query (SQL group by)",
    "one_cell": "one cell's expression (SQL)",
    "join": "≈100 cells by metadata (SQL join)",
    "lazy_slice": "adata[mask][:1000].X.compute()",
    "mean": "adata.X.mean(axis=0)",
}
TOOLS = ("ours", "slafdb", "anndata_backed", "anndata_memory")


def params_for(slaf_path: Path) -> dict:
    """SQL texts and selections, chosen so that the join selects about 100 cells."""
    from slaf import SLAFArray

    cells = SLAFArray(slaf_path).obs
    group = cells.filter((pl.col("cell_type") == "NK cell") & (pl.col("donor_id") == "D2"))
    threshold = float(group["total_counts"].sort(descending=True)[min(100, group.height - 1)])
    cell = cells.height // 2
    return {
        "threshold": threshold,
        "cell": cell,
        "mask_type": "B cell",
        "metadata_sql": (
            "SELECT cell_type, AVG(total_counts) AS avg_counts, COUNT(*) AS n FROM cells "
            "WHERE donor_id = 'D3' GROUP BY cell_type ORDER BY cell_type"
        ),
        "one_cell_sql": (
            f"SELECT gene_integer_id, value FROM expression WHERE cell_integer_id = {cell}"
        ),
        "join_sql": (
            "SELECT e.cell_integer_id, e.gene_integer_id, e.value FROM expression e "
            "JOIN cells c ON e.cell_integer_id = c.cell_integer_id "
            "WHERE c.cell_type = 'NK cell' AND c.donor_id = 'D2' "
            f"AND c.total_counts > {threshold}"
        ),
    }


def run(python: Path, tool: str, query: str, paths: tuple[Path, Path], params: dict, reps: int):
    args = [tool, query, *map(str, paths), json.dumps(params), str(reps)]
    return run_fresh(python, RUNNER, args, slafdb=tool == "slafdb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--reps", type=int, default=5)
    add_ours_python_argument(parser)
    args = parser.parse_args()

    slaf_path = ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    h5ad_path = ensure_h5ad(slaf_path)
    params = params_for(slaf_path)
    pythons = {
        "ours": args.ours_python,
        "slafdb": ensure_slafdb(),
        "anndata_backed": Path(sys.executable),
        "anndata_memory": Path(sys.executable),
    }
    results: dict[str, dict[str, dict]] = {}
    for query in QUERIES:
        results[query] = {}
        for tool in TOOLS:  # peers take turns within each query
            results[query][tool] = run(
                pythons[tool], tool, query, (slaf_path, h5ad_path), params, args.reps
            )
            print(f"  {query:<11} {tool:<15} {results[query][tool]}", flush=True)

    rows = {q: {t: cell_from(r) for t, r in row.items()} for q, row in results.items()}
    for row in rows.values():
        flag_mismatches(row)
    print_table(
        rows,
        QUERIES,
        {t: t for t in TOOLS},
        f"\ndataset: {args.cells:,} cells × {args.genes:,} genes, {slaf_path}\n"
        f"median of {args.reps} after a warm-up; each (tool, query) in a fresh process",
    )


if __name__ == "__main__":
    main()
