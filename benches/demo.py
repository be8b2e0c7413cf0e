"""The main job: generate a realistic dataset, open it in place, and run typical queries.

Run by the README's set-up command; prints what a user would look at and how long it took.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from slaf import SLAFArray

from synthetic import generate

OUT = Path(__file__).resolve().parents[1] / "data" / "demo.slaf"
N_CELLS, N_GENES, NNZ_PER_CELL = 30_000, 20_000, 1_500


def main() -> None:
    t0 = time.perf_counter()
    config = generate(OUT, N_CELLS, N_GENES, NNZ_PER_CELL, seed=42)
    print(
        f"generated {OUT} ({config['metadata']['expression_count']:,} non-zeros) "
        f"in {time.perf_counter() - t0:.1f} s\n"
    )

    data = SLAFArray(OUT)
    data.info()
    print()

    obs = data.obs
    print(obs.group_by("cell_type").len().sort("len", descending=True).head(5))

    t0 = time.perf_counter()
    b_cells = obs.with_row_index("i").filter(pl.col("cell_type") == "B cell")["i"].to_numpy()
    x = data.get_submatrix(b_cells, format="csr")
    elapsed = time.perf_counter() - t0
    mean = np.asarray(x.mean(axis=0)).ravel()
    top = np.argsort(mean)[::-1][:5]
    print(
        f"\nB cells: {x.shape[0]:,} × {x.shape[1]:,} ({x.nnz:,} values) "
        f"read in {elapsed * 1e3:.0f} ms"
    )
    print(
        "top genes by mean count:",
        ", ".join(f"{data.var['gene_symbol'][int(g)]} ({mean[g]:.2f})" for g in top),
    )

    rng = np.random.default_rng(0)
    picks = rng.choice(data.n_cells, size=1000, replace=False)
    t0 = time.perf_counter()
    x = data.get_submatrix(picks, format="csr")
    print(f"1,000 random cells: {x.nnz:,} values in {(time.perf_counter() - t0) * 1e3:.0f} ms")
    t0 = time.perf_counter()
    one = data.get_cell_expression(obs["cell_id"][123])
    print(f"one cell by name: {one.height} values in {(time.perf_counter() - t0) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
