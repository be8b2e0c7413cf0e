"""Generate a realistic synthetic SLAF dataset (format 0.5, the layout slafdb 0.5 writes).

Counts follow a negative-binomial-like model: genes have power-law base rates, cells have
log-normal depths and a cell type that boosts a block of marker genes. The dataset is written
with pylance directly (uint32 cell ids, uint16 gene ids, uint16 values), streaming one chunk
of cells at a time so memory stays bounded.

Usage::

    python benches/synthetic.py OUT.slaf --cells 100000 --genes 20000 --nnz-per-cell 1500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
from tqdm import tqdm

CELL_TYPES = [
    "CD4 T cell",
    "CD8 T cell",
    "NK cell",
    "B cell",
    "CD14 monocyte",
    "FCGR3A monocyte",
    "dendritic cell",
    "plasmacytoid DC",
    "megakaryocyte",
    "erythrocyte",
    "plasma cell",
    "HSPC",
]
DONORS = [f"D{i}" for i in range(1, 9)]
CHUNK = 2048
ROWS_PER_FRAGMENT = 8 * 1024 * 1024


def _gene_model(n_genes: int, nnz_per_cell: float, rng: np.random.Generator):
    freq = 1.0 / np.arange(1, n_genes + 1) ** 0.9
    rng.shuffle(freq)
    freq /= freq.sum()
    # Scale base rates so that an average cell detects about nnz_per_cell genes.
    lo, hi = 1.0, 1e9
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        detected = np.sum(-np.expm1(-mid * freq))
        lo, hi = (mid, hi) if detected < nnz_per_cell else (lo, mid)
    markers = rng.integers(0, n_genes, size=(len(CELL_TYPES), max(10, n_genes // 200)))
    return (freq * lo).astype(np.float32), markers


def _chunks(
    n_cells: int,
    n_genes: int,
    rates: np.ndarray,
    markers: np.ndarray,
    types: np.ndarray,
    depth: np.ndarray,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for start in range(0, n_cells, CHUNK):
        stop = min(start + CHUNK, n_cells)
        mu = np.outer(depth[start:stop], rates)
        for row, t in enumerate(types[start:stop]):
            mu[row, markers[t]] *= 8.0
        detected = rng.random(mu.shape, dtype=np.float32) < -np.expm1(-mu)
        rows, genes = np.nonzero(detected)
        mean = mu[rows, genes]
        extra = rng.negative_binomial(2, 2.0 / (2.0 + mean))
        values = np.minimum(1 + extra, 65535).astype(np.uint16)
        yield (rows + start).astype(np.uint32), genes.astype(np.uint16), values


def generate(
    out: Path,
    n_cells: int,
    n_genes: int,
    nnz_per_cell: float,
    seed: int = 0,
    rows_per_fragment: int = ROWS_PER_FRAGMENT,
) -> dict:
    """Write the dataset to ``out`` (replaced if it exists) and return its config."""
    if n_genes > 65536:
        raise ValueError("this generator stores gene ids as uint16: at most 65,536 genes")
    rng = np.random.default_rng(seed)
    rates, markers = _gene_model(n_genes, nnz_per_cell, rng)
    types = rng.integers(0, len(CELL_TYPES), size=n_cells)
    depth = rng.lognormal(0.0, 0.35, size=n_cells).astype(np.float32)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    counts = np.zeros(n_cells, dtype=np.int64)
    totals = np.zeros(n_cells, dtype=np.float64)
    stats = {"min": np.inf, "max": -np.inf, "sum": 0.0, "sumsq": 0.0}
    schema = pa.schema(
        [("cell_integer_id", pa.uint32()), ("gene_integer_id", pa.uint16()), ("value", pa.uint16())]
    )

    # Cells generated so far, on a terminal only (the main job and the suite generate at scale).
    bar = tqdm(
        total=n_cells,
        unit=" cells",
        unit_scale=True,
        desc="generating",
        leave=False,
        disable=not sys.stderr.isatty(),
    )

    def batches() -> Iterator[pa.RecordBatch]:
        for cells, genes, values in _chunks(n_cells, n_genes, rates, markers, types, depth, rng):
            if len(cells):
                bar.update(int(cells[-1]) + 1 - bar.n)
            np.add.at(counts, cells, 1)
            np.add.at(totals, cells, values)
            v = values.astype(np.float64)
            stats["min"] = min(stats["min"], float(v.min(initial=np.inf)))
            stats["max"] = max(stats["max"], float(v.max(initial=-np.inf)))
            stats["sum"] += float(v.sum())
            stats["sumsq"] += float((v * v).sum())
            yield pa.RecordBatch.from_arrays(
                [pa.array(cells), pa.array(genes), pa.array(values)], schema=schema
            )

    lance.write_dataset(
        pa.RecordBatchReader.from_batches(schema, batches()),
        str(out / "expression.lance"),
        max_rows_per_file=rows_per_fragment,
        data_storage_version="2.2",
    )
    bar.close()

    # Distinct random 16-mers, as a real barcode whitelist gives.
    codes = rng.choice(4**16, size=n_cells, replace=False)
    digits = (codes[:, None] // 4 ** np.arange(16)) % 4
    barcodes = ["".join(b) for b in np.array(list("ACGT"))[digits]]
    cell_ids = [f"{b}-{i % 4 + 1}" for i, b in enumerate(barcodes)]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    mt = np.zeros(n_genes, dtype=bool)
    mt[rng.choice(n_genes, size=min(13, n_genes), replace=False)] = True
    cells = pa.table(
        {
            "cell_type": pa.array(np.array(CELL_TYPES)[types]),
            "donor_id": pa.array(np.array(DONORS)[rng.integers(0, len(DONORS), size=n_cells)]),
            "n_genes_by_counts": pa.array(counts),
            "total_counts": pa.array(totals.astype(np.float32)),
            "cell_id": pa.array(cell_ids),
            "cell_integer_id": pa.array(np.arange(n_cells, dtype=np.int64)),
            "cell_start_index": pa.array(start.astype(np.int64)),
        }
    )
    lance.write_dataset(cells, str(out / "cells.lance"), data_storage_version="2.2")
    genes = pa.table(
        {
            "gene_symbol": pa.array([f"GENE{i}" for i in range(n_genes)]),
            "mt": pa.array(mt),
            "highly_variable": pa.array(rng.random(n_genes) < 0.1),
            "gene_id": pa.array([f"ENSG{i:011d}" for i in range(n_genes)]),
            "gene_integer_id": pa.array(np.arange(n_genes, dtype=np.int64)),
        }
    )
    lance.write_dataset(genes, str(out / "genes.lance"), data_storage_version="2.2")

    nnz = int(counts.sum())
    total = n_cells * n_genes
    mean = stats["sum"] / max(nnz, 1)
    config = {
        "format_version": "0.5",
        "array_shape": [n_cells, n_genes],
        "n_cells": n_cells,
        "n_genes": n_genes,
        "tables": {
            "expression": "expression.lance",
            "cells": "cells.lance",
            "genes": "genes.lance",
        },
        "optimizations": {"use_integer_keys": True, "optimize_storage": True},
        "metadata": {
            "expression_count": nnz,
            "sparsity": 1 - nnz / total,
            "density": nnz / total,
            "total_possible_elements": total,
            "expression_stats": {
                "min_value": stats["min"],
                "max_value": stats["max"],
                "mean_value": mean,
                "std_value": float(np.sqrt(max(stats["sumsq"] / max(nnz, 1) - mean * mean, 0))),
            },
        },
        "created_at": dt.datetime.now().isoformat(),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return config


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """The generated dataset's shape options every benchmark takes: ``--cells``, ``--genes``
    and ``--nnz-per-cell`` (100,000 × 20,000 at 1,500 values per cell by default).

    Parameters
    ----------
    parser
        The benchmark's argument parser.
    """
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz-per-cell", type=float, default=1500)


def ensure_dataset(cells: int, genes: int, nnz: float, out_dir: Path | None = None) -> Path:
    """The generated dataset for this scale (seed 0), made on first use and reused after.

    Parameters
    ----------
    cells, genes, nnz
        Shape and mean stored values per cell.
    out_dir
        Where datasets are kept; ``benches/out`` by default.

    Returns
    -------
    Path
        The dataset folder, ``synthetic_<cells>x<genes>_<nnz>.slaf``.
    """
    out_dir = out_dir or Path(__file__).resolve().parent / "out"
    out = out_dir / f"synthetic_{cells}x{genes}_{int(nnz)}.slaf"
    if not (out / "config.json").exists():
        print(f"generating {out.name} ...", flush=True)
        generate(out, cells, genes, nnz, seed=0)
    return out


def ensure_h5ad(slaf_path: Path) -> Path:
    """The same data as the generated dataset at ``slaf_path``, as an uncompressed CSR h5ad.

    Written once next to the dataset (``<name>.h5ad``), for peers that read h5ad (anndata
    backed and in memory). obs is indexed by ``cell_id``, var by ``gene_id``, with the same
    columns as the ``cells`` / ``genes`` tables; X holds the stored values as float32.

    Parameters
    ----------
    slaf_path
        A dataset made by :func:`generate` (cells stored in id order).

    Returns
    -------
    Path
        The h5ad file.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    out = slaf_path.with_suffix(".h5ad")
    if out.exists():
        return out
    print(f"writing {out.name} ...", flush=True)
    config = json.loads((slaf_path / "config.json").read_text())
    n_cells, n_genes = config["array_shape"]
    table = lance.dataset(str(slaf_path / "expression.lance")).to_table(
        columns=["cell_integer_id", "gene_integer_id", "value"]
    )
    cells = table.column("cell_integer_id").to_numpy()
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(cells, minlength=n_cells), out=indptr[1:])
    del cells
    x = sp.csr_matrix(
        (
            table.column("value").to_numpy().astype(np.float32),
            table.column("gene_integer_id").to_numpy().astype(np.int32),
            indptr,
        ),
        shape=(n_cells, n_genes),
    )
    del table

    def frame(name: str, index: str, drop: list[str]) -> pd.DataFrame:
        df = lance.dataset(str(slaf_path / name)).to_table().to_pandas()
        df = df.sort_values(drop[0]).drop(columns=drop).set_index(index)
        df.index = df.index.astype(str)
        df.index.name = None
        return df

    obs = frame("cells.lance", "cell_id", ["cell_integer_id", "cell_start_index"])
    var = frame("genes.lance", "gene_id", ["gene_integer_id"])
    tmp = out.with_suffix(".h5ad.tmp")
    ad.AnnData(X=x, obs=obs, var=var).write_h5ad(tmp)
    tmp.rename(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz-per-cell", type=float, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = generate(args.out, args.cells, args.genes, args.nnz_per_cell, args.seed)
    nnz = config["metadata"]["expression_count"]
    print(
        f"wrote {args.out}: {args.cells} cells × {args.genes} genes, {nnz} non-zeros "
        f"({nnz / args.cells:.0f} per cell)"
    )


if __name__ == "__main__":
    main()
