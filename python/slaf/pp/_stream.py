"""Streaming passes over a LazyAnnData's X (or a layer) in cell blocks, for slaf.pp.

Every statistic slaf.pp needs is a per-gene or per-cell reduction, so one pass over
consecutive row blocks (each a few million values, transformed as recorded) keeps memory
independent of the number of cells except for the per-cell outputs themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from slaf.integrations.anndata import LazyAnnData, LazyExpressionMatrix


def check_adata(adata: Any, function: str) -> LazyAnnData:
    """``adata`` if it is a :class:`LazyAnnData`, else a TypeError pointing at scanpy."""
    if not isinstance(adata, LazyAnnData):
        raise TypeError(
            f"slaf.pp.{function} takes a LazyAnnData (slaf.read_slaf(path)), not "
            f"{type(adata).__name__}; use scanpy.pp.{function} for in-memory AnnData"
        )
    return adata


def matrix(adata: LazyAnnData, layer: str | None) -> LazyExpressionMatrix:
    """X, or the named layer, of ``adata``; a KeyError names the missing layer."""
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise KeyError(f"layer {layer!r} not found (layers: {list(adata.layers) or 'none'})")
    return adata.layers[layer]


def x_only(layer: str | None, function: str) -> None:
    """Transformations are recorded on X only; a layer gets a clear error."""
    if layer is not None:
        raise NotImplementedError(
            f"slaf.pp.{function} records its transformation on X only, not on layer "
            f"{layer!r}; use scanpy.pp.{function} on to_memory() for layers"
        )


# Values per block handed to a pass: the passes' float64/int64 temporaries are a few times
# this, so it bounds their memory (~8 MB each) independently of the read chunk size.
_PASS_VALUES = 1_000_000


def blocks(source: LazyExpressionMatrix) -> Iterator[tuple[int, sp.csr_matrix]]:
    """``(first row, CSR block)`` over the matrix, in order (dense blocks made sparse), each
    of at most about a million stored values."""
    row = 0
    for chunk in source.chunks():
        if not sp.issparse(chunk):
            chunk = sp.csr_matrix(chunk)
        lo = 0
        while lo < chunk.shape[0]:
            # the most rows from lo whose values fit (at least one row)
            limit = chunk.indptr[lo] + _PASS_VALUES
            hi = max(lo + 1, int(np.searchsorted(chunk.indptr, limit, side="right")) - 1)
            hi = min(hi, chunk.shape[0])
            yield row + lo, chunk[lo:hi]
            lo = hi
        row += chunk.shape[0]


#: The stored statistics' columns (see ``src/gene_major/stats.rs``), per cell (axis 1) and
#: per gene (axis 0): the sum of X, and the number of values != 0.
STORED_TOTAL = "slaf_total_counts"
STORED_NONZERO = {1: "slaf_n_genes_by_counts", 0: "slaf_n_cells_by_counts"}


def stored_stats(adata: LazyAnnData, axis: int) -> pl.DataFrame | None:
    """The statistics the dataset stores per cell (``axis=1``) or per gene (``axis=0``), when
    they describe ``adata.X`` exactly: the whole dataset, untransformed, and the gene-major
    table fresh (``slaf convert`` writes them; ``slaf index`` adds them). ``None`` otherwise,
    and the caller streams X instead. Columns: :data:`STORED_TOTAL`, :data:`STORED_NONZERO`
    and, per gene, ``slaf_mean`` and ``slaf_sum_squares``."""
    if adata.is_view or adata.transforms:
        return None
    table = adata.slaf._native.axis_stats("cells" if axis == 1 else "genes")
    return None if table is None else pl.DataFrame(table)


def row_ids(block: sp.csr_matrix) -> np.ndarray:
    """The row of each stored value of a CSR block."""
    return np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))


def mean_var(sums: np.ndarray, squares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased variance from float64 sums, by scanpy's ``_get_mean_var`` formula."""
    mean = sums / n
    var = squares / n - mean**2
    if n != 1:
        var *= n / (n - 1)
    return mean, var
