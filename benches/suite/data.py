"""The data every tool reads, at one scale: the generated dataset (``synthetic.py``), its
gene-major copy (ours), the same data as h5ad (anndata, scDataset, the converters), as a
TileDB-SOMA experiment, as written by slafdb's converter (ours on slafdb's copy) and as Parquet
files (DuckDB, pyarrow); and the selections the scenarios ask for. Everything is cached under
``benches/out/`` keyed by scale."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lance
import numpy as np
from suite.tools import ensure_indexed, ensure_parquet, ensure_slafdb_copy, ensure_soma

from synthetic import CELL_TYPES, DONORS, ensure_dataset, ensure_h5ad


@dataclass(frozen=True)
class Dataset:
    """One scale's data, as each tool reads it.

    Parameters
    ----------
    plain
        The generated dataset (format 0.5, as slafdb writes it): slafdb reads this.
    indexed
        Its copy with the gene-major table (``slaf index``): ours reads this.
    h5ad
        The same data as an h5ad: anndata, scDataset and the converters read this.
    soma
        The h5ad ingested by TileDB-SOMA; None when tiledbsoma is not installed.
    shape
        Cells, genes.
    nnz
        Stored values.
    slafdb_copy
        The h5ad converted by slafdb 0.5.2: ours on slafdb's copy reads this; None when slafdb
        is not installed or no tool reads it.
    parquet
        The folder of the Parquet copy (expression, cells, genes): the Parquet tools read this;
        None when no tool reads it.
    preparation
        How the copies were made (times measured when each was written, sizes on disk), for
        the JSON record.
    """

    plain: Path
    indexed: Path
    h5ad: Path
    soma: Path | None
    shape: tuple[int, int]
    nnz: int
    slafdb_copy: Path | None = None
    parquet: Path | None = None
    preparation: dict = field(default_factory=dict)


def prepare(
    cells: int,
    genes: int,
    nnz_per_cell: float,
    out_dir: Path | None = None,
    tools: set[str] | None = None,
) -> Dataset:
    """Generate (or reuse) the data at this scale in every tool's format.

    Parameters
    ----------
    cells, genes, nnz_per_cell
        The scale.
    out_dir
        The cache folder (``benches/out`` by default).
    tools
        The tools that will run (default: all); slafdb's copy and the Parquet copy are made
        only for the tools that read them.

    Returns
    -------
    Dataset
        The paths.
    """
    plain = ensure_dataset(cells, genes, nnz_per_cell, out_dir)
    indexed, index_s, _ = ensure_indexed(plain, Path(sys.executable))
    if index_s:
        print(f"built the gene-major table in {index_s:.1f} s", flush=True)
    h5ad = ensure_h5ad(plain)
    soma, soma_s = ensure_soma(h5ad, Path(sys.executable))
    if soma_s:
        print(f"ingested {h5ad.name} into TileDB-SOMA in {soma_s:.1f} s", flush=True)
    preparation = {}
    if soma is not None:
        preparation["soma"] = {"ingest_s": round(float((soma / ".done").read_text()), 3)}
    slafdb_copy = parquet = None
    if tools is None or "ours_on_slafdb" in tools:
        slafdb_copy, preparation["slafdb_copy"] = ensure_slafdb_copy(h5ad)
    if tools is None or tools & {"parquet_duckdb", "parquet_pyarrow"}:
        parquet, preparation["parquet"] = ensure_parquet(indexed)
    for key, info in preparation.items():
        if info.get("bytes"):
            made = info.get("convert_s", info.get("write_s"))
            print(f"{key} copy: {info['bytes'] / 2**20:,.1f} MiB, made in {made:.1f} s", flush=True)
    config = json.loads((plain / "config.json").read_text())
    shape, nnz = tuple(config["array_shape"]), config["metadata"]["expression_count"]
    return Dataset(plain, indexed, h5ad, soma, shape, nnz, slafdb_copy, parquet, preparation)


def selections(data: Dataset) -> dict:
    """The cells, genes and thresholds the scenarios ask for (seed 0), cached beside the data.

    Parameters
    ----------
    data
        The dataset.

    Returns
    -------
    dict
        JSON-ready: integer ids are sorted (every tool returns rows in id order), the gene
        threshold is exceeded by about 1 % of genes.
    """
    cache = data.plain.with_suffix(".suite.json")
    if cache.exists():
        cached = json.loads(cache.read_text())
        if "cells10000" in cached:  # else made before cells10000 was asked for: redone
            return cached
    n_cells, n_genes = data.shape
    rng = np.random.default_rng(0)

    def pick(n: int, k: int) -> list[int]:
        return sorted(rng.choice(n, size=min(k, n), replace=False).tolist())

    totals = np.zeros(n_genes)
    expression = lance.dataset(str(data.plain / "expression.lance"))
    for batch in expression.to_batches(columns=["gene_integer_id", "value"]):
        genes = batch.column("gene_integer_id").to_numpy()
        values = batch.column("value").to_numpy().astype(np.float64)
        totals += np.bincount(genes, weights=values, minlength=n_genes)
    out = {
        "cell": n_cells // 2,
        "cells1000": pick(n_cells, 1000),
        "cells500": pick(n_cells, 500),
        "genes500": pick(n_genes, 500),
        "genes10": pick(n_genes, 10),
        "gene1": int(rng.integers(n_genes)),
        "genes100": pick(n_genes, 100),
        # Drawn after the others, so that adding it left their draws unchanged.
        "cells10000": pick(n_cells, 10000),
        "cell_type": CELL_TYPES[3],
        "donor": DONORS[2],
        # Midway between two distinct totals, so float sums on either side agree.
        "threshold": _between(totals, 0.99),
    }
    gene_ids = lance.dataset(str(data.plain / "genes.lance")).to_table(
        columns=["gene_id", "gene_integer_id"]
    )
    order = np.argsort(gene_ids.column("gene_integer_id").to_numpy())
    names = np.asarray(gene_ids.column("gene_id").to_pylist())[order]
    out["genes10_names"] = names[out["genes10"]].tolist()
    cache.write_text(json.dumps(out))
    return out


def _between(values: np.ndarray, quantile: float) -> float:
    distinct = np.unique(values)
    i = min(int(quantile * len(distinct)), len(distinct) - 2)
    return float((distinct[i] + distinct[i + 1]) / 2)
