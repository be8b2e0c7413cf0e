"""Benchmark ``get_submatrix``: ours vs slafdb 0.5.2 on the same generated dataset.

Both run in this process's run, one after the other, each in its own interpreter (slafdb lives
in ``.venv-slafdb``, made on first use), on the same dataset, the same random cells, warm page
cache. Prints medians and the ratio slafdb / ours.

Usage::

    .venv/bin/python benches/bench_submatrix.py [--cells 100000 --genes 20000 --nnz-per-cell 1500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite.report import cell_from, flag_mismatches, print_table
from suite.tools import add_ours_python_argument, ensure_slafdb, run_fresh

from synthetic import add_scale_arguments, ensure_dataset

# Runs inside either interpreter: `import slaf` is ours in .venv and slafdb in .venv-slafdb.
RUNNER = r"""
import json, sys, time
import numpy as np
from slaf import SLAFArray
path, reps = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
data = SLAFArray(path)
if hasattr(data, "wait_for_metadata"):
    data.wait_for_metadata()
open_s = time.perf_counter() - t0
n = data.shape[0]
rng = np.random.default_rng(0)
def timed(cells):
    t = time.perf_counter()
    out = data.get_submatrix(cells, None)
    return time.perf_counter() - t, out
timed([0])  # first query pays one-off costs (index load) in both
many, nnz = [], None
for _ in range(reps):
    cells = rng.choice(n, size=1000, replace=False).tolist()
    t, out = timed(cells)
    many.append(t)
    nnz = out.nnz if hasattr(out, "nnz") else out.height
one = [timed([int(rng.integers(n))])[0] for _ in range(reps * 5)]
print(json.dumps({"open_s": open_s, "many_s": many, "one_s": one, "values_1000": nnz,
                  "module": __import__("slaf").__file__}))
"""


def run(python: Path, path: Path, reps: int, slafdb: bool) -> dict:
    """Both queries in a fresh ``python`` (slafdb's without PYTHONPATH); raises on failure."""
    out = run_fresh(python, RUNNER, [str(path), str(reps)], slafdb)
    if "error" in out:
        raise RuntimeError(out["error"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    add_scale_arguments(parser)
    parser.add_argument("--reps", type=int, default=9)
    add_ours_python_argument(parser)
    args = parser.parse_args()

    path = ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    ours = run(args.ours_python, path, args.reps, slafdb=False)
    theirs = run(ensure_slafdb(), path, args.reps, slafdb=True)
    config = json.loads((path / "config.json").read_text())
    nnz = config["metadata"]["expression_count"]
    print(
        f"\ndataset: {args.cells:,} cells × {args.genes:,} genes, {nnz:,} non-zeros "
        f"({nnz / args.cells:.0f}/cell), {path}"
    )
    print(f"ours: {ours['module']}\nslafdb: {theirs['module']}\n")
    labels = {
        "open": "open (slafdb: + obs/var)",
        "many": "get_submatrix 1000 cells",
        "one": "get_submatrix 1 cell",
    }
    rows = {}
    for key in labels:  # checksums differ by design (CSR vs long frame): none compared
        row = {}
        for tool, r in (("ours", ours), ("slafdb", theirs)):
            times = [r["open_s"]] if key == "open" else r[f"{key}_s"]
            row[tool] = cell_from({"median_s": statistics.median(times)})
        flag_mismatches(row)
        rows[key] = row
    print_table(rows, labels, {"ours": "ours", "slafdb": "slafdb"}, memory=False)
    print(
        f"\nvalues per 1000-cell query: ours {ours['values_1000']:,} (CSR), "
        f"slafdb {theirs['values_1000']:,} (long DataFrame rows)"
    )


if __name__ == "__main__":
    main()
