"""Benchmark the scanpy preprocessing recipe: ``slaf.pp`` out of core vs scanpy in memory
(reading the h5ad included) vs slafdb 0.5.2's ``pp`` where it has the step.

The recipe: calculate_qc_metrics(qc_vars=["mt"]) → filter_cells(min_genes) →
filter_genes(min_cells=3) → normalize_total(1e4) → log1p → highly_variable_genes(seurat,
n_top_genes) → pca(n_comps). Each tool runs the whole recipe in a fresh interpreter on the same
generated dataset; the wall time of each step, the total and the process's peak RSS are
reported, with a checksum (cells and genes kept, HVG count, first variance ratio) so that a
tool giving a different answer is flagged. slafdb runs from ``.venv-slafdb`` (``--slafdb``).

Usage::

    .venv/bin/python benches/bench_pp.py [--cells 100000 --genes 20000 --nnz-per-cell 1500]
    .venv/bin/python benches/bench_pp.py --cells 2000 --genes 1000 --nnz-per-cell 100 \\
        --min-genes 20 --n-top 200 --n-comps 20          # a quick check that it runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite.report import cell_from, flag_mismatches, print_table
from suite.tools import add_ours_python_argument, run_fresh

from synthetic import add_scale_arguments, ensure_dataset, ensure_h5ad

# Runs in a fresh interpreter: argv = tool, slaf path, h5ad path, params (JSON).
RUNNER = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
tool, slaf_path, h5ad_path, params = sys.argv[1:5]
p = json.loads(params)
times, missing = {}, []

def step(name, call):
    t = time.perf_counter()
    try:
        call()
    except (AttributeError, NotImplementedError, TypeError) as e:
        if tool != "slafdb":
            raise
        missing.append(f"{name}: {type(e).__name__}")  # slafdb lacks this step
        return
    times[name] = time.perf_counter() - t

t0 = time.perf_counter()
if tool == "scanpy":
    import anndata as ad
    import scanpy as sc
    pp = sc.pp
    holder = {}
    step("read", lambda: holder.update(a=ad.read_h5ad(h5ad_path)))
    adata = holder["a"]
else:
    from slaf.integrations.anndata import read_slaf
    from slaf.integrations.scanpy import pp
    holder = {}
    step("read", lambda: holder.update(a=read_slaf(slaf_path)))
    adata = holder["a"]
# slafdb's pp has neither qc_vars nor flavor (its hvg is seurat's)
qc_args = {} if tool == "slafdb" else {"qc_vars": ["mt"]}
hvg_args = {} if tool == "slafdb" else {"flavor": "seurat"}
step("qc", lambda: pp.calculate_qc_metrics(adata, inplace=True, **qc_args))
step("filter_cells", lambda: pp.filter_cells(adata, min_genes=p["min_genes"]))
step("filter_genes", lambda: pp.filter_genes(adata, min_cells=3))
step("normalize", lambda: pp.normalize_total(adata, target_sum=1e4))
step("log1p", lambda: pp.log1p(adata))
step("hvg", lambda: pp.highly_variable_genes(adata, n_top_genes=p["n_top"], **hvg_args))
if tool == "scanpy":
    step("pca", lambda: pp.pca(adata, n_comps=p["n_comps"], svd_solver="arpack"))
else:
    step("pca", lambda: pp.pca(adata, n_comps=p["n_comps"]))
total = time.perf_counter() - t0
check = [int(adata.n_obs), int(adata.n_vars)]
try:
    check.append(int(adata.var["highly_variable"].sum()))
    check.append(round(float(adata.uns["pca"]["variance_ratio"][0]), 4))
except Exception:
    pass
out = {"steps": times, "total_s": total, "check": check, "missing": missing}
if tool != "scanpy":
    import slaf
    out["slaf"] = slaf.__file__
out["peak_mib"] = _peak_mib()  # run_fresh defines it
print(json.dumps(out))
"""

STEPS = ("read", "qc", "filter_cells", "filter_genes", "normalize", "log1p", "hvg", "pca")


def run(python: Path, tool: str, paths: tuple[Path, Path], params: dict) -> dict:
    """One tool's whole recipe in a fresh interpreter; an error is reported, not raised."""
    args = [tool, *map(str, paths), json.dumps(params)]
    return run_fresh(python, RUNNER, args, slafdb=tool == "slafdb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--min-genes", type=int, default=200)
    parser.add_argument("--n-top", type=int, default=2000)
    parser.add_argument("--n-comps", type=int, default=50)
    add_ours_python_argument(parser)
    parser.add_argument(
        "--scanpy-python", type=Path, default=Path(sys.executable), help="one with scanpy"
    )
    parser.add_argument("--slafdb", action="store_true", help="also run slafdb 0.5.2's pp")
    args = parser.parse_args()

    slaf_path = ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    h5ad_path = ensure_h5ad(slaf_path)
    params = {"min_genes": args.min_genes, "n_top": args.n_top, "n_comps": args.n_comps}
    pythons = {"ours": args.ours_python, "scanpy": args.scanpy_python}
    if args.slafdb:
        from suite.tools import ensure_slafdb

        pythons["slafdb"] = ensure_slafdb()
    results = {}
    for tool, python in pythons.items():
        results[tool] = run(python, tool, (slaf_path, h5ad_path), params)
        print(f"  {tool:<7} {results[tool]}", flush=True)

    rows: dict[str, dict[str, dict]] = {step: {} for step in (*STEPS, "total")}
    for tool, r in results.items():
        for step in rows:
            seconds = r.get("total_s") if step == "total" else r.get("steps", {}).get(step)
            if "error" in r:
                rows[step][tool] = cell_from(r)
            elif seconds is None:
                rows[step][tool] = {"status": "marked", "note": "no such step"}
            else:  # the checksum is the whole recipe's: on the total only
                check = r["check"] if step == "total" else None
                rows[step][tool] = cell_from({"median_s": seconds, "check": check})
        rows["total"][tool]["peak_mib"] = r.get("peak_mib")
    for row in rows.values():
        flag_mismatches(row)
    print_table(
        rows,
        {step: step for step in rows},
        {tool: tool for tool in results},
        f"\ndataset: {args.cells:,} cells × {args.genes:,} genes, {slaf_path}\n"
        f"recipe: {json.dumps(params)}; each tool in a fresh process (peak RSS: on the total)",
    )


if __name__ == "__main__":
    main()
