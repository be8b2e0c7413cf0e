"""Benchmark gene-centric reads: ours (with and without the gene-major table) vs slafdb 0.5.2,
anndata (backed and in memory) and TileDB-SOMA, on the same generated data.

Queries: 10 genes × all cells, 1 gene × all cells, the genes whose total counts exceed a
threshold, and 100 genes × 1000 cells. Each (tool, query) runs in a fresh process, a warm-up
then ``--reps`` timed runs (median), tools taking turns within each query; every tool's
answer is checked against ours (values read and their sum). Also prints what the gene-major
table costs: ``slaf index`` time and disk beside the expression table.

Usage::

    .venv/bin/python benches/bench_gene_major.py [--cells 100000 --genes 20000 --nnz-per-cell 1500]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite.tools import (
    add_ours_python_argument,
    ensure_indexed,
    ensure_slafdb,
    ensure_soma,
    run_fresh,
)

from synthetic import add_scale_arguments, ensure_dataset, ensure_h5ad

# Runs in a fresh interpreter per (tool, query); `import slaf` is slafdb in .venv-slafdb.
RUNNER = r"""
import json, statistics, sys, time
import numpy as np
tool, query, path = sys.argv[1], sys.argv[2], sys.argv[3]
params, reps = json.loads(sys.argv[4]), int(sys.argv[5])
genes10, gene1, threshold = params["genes10"], params["gene1"], params["threshold"]
cells1000, genes100 = params["cells1000"], params["genes100"]
t0 = time.perf_counter()
if tool in ("ours", "ours_cell_major", "slafdb"):
    from slaf import SLAFArray
    data = SLAFArray(path)
    if hasattr(data, "wait_for_metadata"):
        data.wait_for_metadata()
elif tool.startswith("anndata"):
    import anndata as ad
    adata = ad.read_h5ad(path, backed="r" if tool == "anndata_backed" else None)
elif tool == "soma":
    import tiledbsoma
    exp = tiledbsoma.Experiment.open(path)
    X = exp.ms["RNA"].X["data"]
open_s = time.perf_counter() - t0

def frame_check(df):
    return [int(df.height), round(float(df["value"].sum()), 1)]

def csr_check(x):
    return [int(x.nnz), round(float(x.sum()), 1)]

def table_check(t):
    return [int(t.num_rows), round(float(np.asarray(t["soma_data"]).sum()), 1)]

def gene_names(ids):
    var = data.var
    if hasattr(var, "iloc"):  # slafdb: a pandas frame
        return var["gene_id"].iloc[ids].tolist()
    return var["gene_id"].gather(ids).to_list()

def genes_by_all_cells(ids):
    if tool in ("ours", "ours_cell_major", "slafdb"):
        return frame_check(data.get_gene_expression(gene_names(ids)))
    if tool.startswith("anndata"):
        x = adata.X if tool == "anndata_memory" else None
        if x is None:  # backed CSR: anndata reads X to slice columns
            return csr_check(adata[:, ids].X)
        return csr_check(x[:, ids])
    return table_check(X.read(coords=(slice(None), ids)).tables().concat())

def genes_by_cells(cells, ids):
    if tool in ("ours", "ours_cell_major", "slafdb"):
        return frame_check(data.get_submatrix(cells, ids))
    if tool.startswith("anndata"):
        if tool == "anndata_backed":  # one indexing: backed views cannot be sliced again
            return csr_check(adata[cells, ids].X)
        return csr_check(adata.X[cells][:, ids])
    return table_check(X.read(coords=(cells, ids)).tables().concat())

def high_genes():
    if tool == "ours":  # the stored per-gene statistics
        df = data.query(f"SELECT gene_integer_id FROM genes WHERE slaf_total_counts > {threshold}")
        ids = df["gene_integer_id"]
    elif tool in ("ours_cell_major", "slafdb"):
        df = data.query(
            "SELECT gene_integer_id FROM expression GROUP BY gene_integer_id "
            f"HAVING SUM(value) > {threshold}"
        )
        ids = df["gene_integer_id"]
    elif tool == "anndata_memory":
        ids = np.flatnonzero(np.asarray(adata.X.sum(axis=0)).ravel() > threshold)
    elif tool == "anndata_backed":
        total = np.zeros(adata.n_vars)
        for chunk, _, _ in adata.chunked_X(10_000):
            total += np.asarray(chunk.sum(axis=0)).ravel()
        ids = np.flatnonzero(total > threshold)
    else:
        total = np.zeros(X.shape[1])
        for t in X.read().tables():
            total += np.bincount(np.asarray(t["soma_dim_1"]), weights=np.asarray(t["soma_data"]),
                                 minlength=X.shape[1])
        ids = np.flatnonzero(total > threshold)
    ids = sorted(int(i) for i in ids)
    return [len(ids), sum(ids)]

run = {
    "ten_genes": lambda: genes_by_all_cells(genes10),
    "one_gene": lambda: genes_by_all_cells([gene1]),
    "high_genes": high_genes,
    "genes100_cells1000": lambda: genes_by_cells(cells1000, genes100),
}[query]
try:
    check = run()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        check = run()
        times.append(time.perf_counter() - t)
    out = {"open_s": open_s, "median_s": statistics.median(times), "times": times, "check": check}
    if "slaf" in sys.modules:
        out["module"] = sys.modules["slaf"].__file__
except Exception as e:  # a peer that cannot run a query is marked, not dropped
    out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"}
out["peak_mib"] = _peak_mib()
print(json.dumps(out))
sys.stdout.flush()
import os
os._exit(0)  # slafdb's background metadata thread would otherwise delay the exit
"""

QUERIES = {
    "ten_genes": "10 genes × all cells",
    "one_gene": "1 gene × all cells",
    "high_genes": "genes with total counts > T",
    "genes100_cells1000": "100 genes × 1000 cells",
}
TOOLS = ("ours", "ours_cell_major", "slafdb", "anndata_backed", "anndata_memory", "soma")
PEERS = ("slafdb", "anndata_backed", "anndata_memory", "soma")


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def params_for(indexed: Path, n_cells: int, n_genes: int) -> dict:
    """Random genes and cells (seed 0) and a threshold that about 1% of genes exceed."""
    from slaf import SLAFArray

    rng = np.random.default_rng(0)
    totals = SLAFArray(indexed).query("SELECT slaf_total_counts FROM genes")["slaf_total_counts"]
    return {
        "genes10": sorted(rng.choice(n_genes, 10, replace=False).tolist()),
        "gene1": int(rng.integers(n_genes)),
        "genes100": sorted(rng.choice(n_genes, 100, replace=False).tolist()),
        "cells1000": sorted(rng.choice(n_cells, 1000, replace=False).tolist()),
        "threshold": float(np.quantile(totals.to_numpy(), 0.99)),
    }


def run(python: Path, tool: str, query: str, path: Path, params: dict, reps: int) -> dict:
    args = [tool, query, str(path), json.dumps(params), str(reps)]
    return run_fresh(python, RUNNER, args, slafdb=tool == "slafdb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--reps", type=int, default=5)
    add_ours_python_argument(parser)
    parser.add_argument("--skip", nargs="*", default=[], choices=TOOLS, help="tools to leave out")
    args = parser.parse_args()

    plain = ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    h5ad = ensure_h5ad(plain)
    indexed, index_s, index_mib = ensure_indexed(plain, args.ours_python)
    soma, soma_s = ensure_soma(h5ad, Path(sys.executable))
    expression = du(indexed / "expression.lance")
    companion = du(indexed / "expression_by_gene.lance")
    print(
        f"slaf index: {index_s:.1f} s at {index_mib:.0f} MiB peak (0 = reused); "
        f"gene-major table {companion / 2**20:.0f} MiB"
    )
    print(f"  beside expression {expression / 2**20:.0f} MiB ({companion / expression:.2f}×)")
    if soma is None:
        print("TileDB-SOMA: not installed (pip install tiledbsoma); its column is left out")
    else:
        print(f"TileDB-SOMA ingest: {soma_s:.1f} s (0 = reused), {du(soma) / 2**20:.0f} MiB")
    params = params_for(indexed, args.cells, args.genes)
    pythons = {tool: Path(sys.executable) for tool in TOOLS}
    pythons["ours"] = pythons["ours_cell_major"] = args.ours_python
    pythons["slafdb"] = ensure_slafdb()
    paths = {
        "ours": indexed,
        "ours_cell_major": plain,
        "slafdb": plain,
        "anndata_backed": h5ad,
        "anndata_memory": h5ad,
        "soma": soma,
    }
    tools = [t for t in TOOLS if t not in args.skip and paths[t] is not None]
    results: dict[str, dict[str, dict]] = {}
    for query in QUERIES:
        results[query] = {}
        for tool in tools:  # peers take turns within each query
            results[query][tool] = run(pythons[tool], tool, query, paths[tool], params, args.reps)
            print(f"  {query:<19} {tool:<16} {results[query][tool]}", flush=True)

    print(
        f"\ndataset: {args.cells:,} cells × {args.genes:,} genes, {args.nnz_per_cell:g} values/cell"
    )
    print(f"median of {args.reps} after a warm-up; each (tool, query) in a fresh process\n")
    print(f"{'query':<30}" + "".join(f"{t:>17}" for t in tools) + "   peer / ours")
    for query, label in QUERIES.items():
        row = results[query]
        ours = row["ours"]
        cells, ratios = [], []
        for tool in tools:
            r = row[tool]
            if "error" in r:
                cells.append(f"{'error':>17}")
                continue
            mark = "" if r["check"] == ours.get("check") else "≠"
            cells.append(f"{r['median_s'] * 1e3:>14.1f}ms{mark or ' '}")
            if tool in PEERS and "median_s" in ours:
                ratios.append(f"{tool} {r['median_s'] / ours['median_s']:.1f}×")
        print(f"{label:<30}" + "".join(cells) + "   " + ", ".join(ratios))
    print("\n≠: the answer differs from ours (checked: values read and their sum, or gene ids)")
    print(
        "open time (s): "
        + ", ".join(f"{t} {results['ten_genes'][t].get('open_s', float('nan')):.2f}" for t in tools)
    )


if __name__ == "__main__":
    main()
