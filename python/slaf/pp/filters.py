"""``filter_cells`` / ``filter_genes``: scanpy's filters, narrowing the LazyAnnData in place."""

from __future__ import annotations

from typing import Any

import numpy as np

from slaf.integrations.anndata import LazyAnnData
from slaf.pp._stream import (
    STORED_NONZERO,
    STORED_TOTAL,
    blocks,
    check_adata,
    row_ids,
    stored_stats,
)


def _one_option(names: tuple[str, ...], values: tuple[float | None, ...]) -> None:
    if sum(v is not None for v in values) != 1:
        listed = ", ".join(f"`{n}`" for n in names)
        raise ValueError(f"Only provide one of the optional parameters {listed} per call.")


def _per_axis(adata: LazyAnnData, axis: int, count_genes: bool) -> np.ndarray:
    """Per cell (axis 1) or per gene (axis 0): the sum of X, or the number of values > 0."""
    source = adata.X
    stats = stored_stats(adata, axis)
    # The stored counts are of values != 0: the same as > 0 when no value is negative.
    recorded = adata.slaf.config.get("metadata", {}).get("expression_stats", {})
    nonnegative = recorded.get("min_value", -1) >= 0
    if stats is not None and (nonnegative or not count_genes):
        out = stats[STORED_NONZERO[axis] if count_genes else STORED_TOTAL].to_numpy()
        out = out.astype(np.int64 if count_genes else float)
    else:
        out = _streamed(source, axis, count_genes)
    if not count_genes and np.issubdtype(source.dtype, np.floating):
        out = out.astype(source.dtype)  # scanpy sums in the data's dtype
    return out


def _streamed(source: Any, axis: int, count_genes: bool) -> np.ndarray:
    """:func:`_per_axis` computed in one pass over X."""
    n_obs, n_vars = source.shape
    out = np.zeros(n_obs if axis == 1 else n_vars, dtype=np.int64 if count_genes else float)
    for lo, block in blocks(source):
        weights = (block.data > 0) if count_genes else block.data.astype(np.float64)
        if axis == 1:
            part = np.bincount(row_ids(block), weights=weights, minlength=block.shape[0])
            out[lo : lo + block.shape[0]] = part
        else:
            out += np.bincount(block.indices, weights=weights, minlength=n_vars).astype(out.dtype)
    return out


def _mask(number: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    return number >= low if low is not None else number <= high


def filter_cells(
    data: LazyAnnData,
    *,
    min_counts: int | None = None,
    min_genes: int | None = None,
    max_counts: int | None = None,
    max_genes: int | None = None,
    inplace: bool = True,
    copy: bool = False,
) -> LazyAnnData | tuple[np.ndarray, np.ndarray] | None:
    """Keep cells with enough (or not too many) counts or expressed genes, as
    ``scanpy.pp.filter_cells``.

    With ``inplace`` the LazyAnnData's cell selection is narrowed (nothing is written) and
    ``obs["n_genes"]`` or ``obs["n_counts"]`` is added.

    Parameters
    ----------
    data
        The dataset view.
    min_counts, min_genes, max_counts, max_genes
        Exactly one: a bound on total counts or on the number of genes with a value > 0.
    inplace
        Narrow ``data`` in place; else return ``(cell_subset, number_per_cell)``.
    copy
        Filter and return a lazy copy instead (``data`` is left as it is).

    Returns
    -------
    tuple of numpy.ndarray, LazyAnnData or None

    Examples
    --------
    >>> adata = slaf.read_slaf("pbmc.slaf")                           # doctest: +SKIP
    >>> slaf.pp.filter_cells(adata, min_genes=200)                    # doctest: +SKIP
    >>> keep, n_genes = slaf.pp.filter_cells(adata, min_genes=200, inplace=False)  # doctest: +SKIP
    """
    adata = check_adata(data, "filter_cells")
    bounds = {"min_counts": min_counts, "min_genes": min_genes}
    bounds |= {"max_counts": max_counts, "max_genes": max_genes}
    return _filter(adata, "obs", bounds, inplace, copy)


def filter_genes(
    data: LazyAnnData,
    *,
    min_counts: int | None = None,
    min_cells: int | None = None,
    max_counts: int | None = None,
    max_cells: int | None = None,
    inplace: bool = True,
    copy: bool = False,
) -> LazyAnnData | tuple[np.ndarray, np.ndarray] | None:
    """Keep genes with enough (or not too many) counts or expressing cells, as
    ``scanpy.pp.filter_genes``.

    With ``inplace`` the LazyAnnData's gene selection is narrowed and ``var["n_cells"]`` or
    ``var["n_counts"]`` is added.

    Parameters
    ----------
    data
        The dataset view.
    min_counts, min_cells, max_counts, max_cells
        Exactly one: a bound on total counts or on the number of cells with a value > 0.
    inplace
        Narrow ``data`` in place; else return ``(gene_subset, number_per_gene)``.
    copy
        Filter and return a lazy copy instead.

    Returns
    -------
    tuple of numpy.ndarray, LazyAnnData or None

    Examples
    --------
    >>> adata = slaf.read_slaf("pbmc.slaf")                           # doctest: +SKIP
    >>> slaf.pp.filter_genes(adata, min_cells=3)                      # doctest: +SKIP
    """
    adata = check_adata(data, "filter_genes")
    bounds = {"min_counts": min_counts, "min_cells": min_cells}
    bounds |= {"max_counts": max_counts, "max_cells": max_cells}
    return _filter(adata, "var", bounds, inplace, copy)


def _filter(
    adata: LazyAnnData, side: str, bounds: dict[str, Any], inplace: bool, copy: bool
) -> LazyAnnData | tuple[np.ndarray, np.ndarray] | None:
    """scanpy's filter rule, for cells (``side="obs"``, counted over genes) or genes
    (``"var"``, counted over cells): ``bounds`` holds min/max counts and min/max number, in
    that order, exactly one of them set."""
    _one_option(tuple(bounds), tuple(bounds.values()))
    min_counts, min_number, max_counts, max_number = bounds.values()
    by_number = min_number is not None or max_number is not None
    number = _per_axis(adata, 1 if side == "obs" else 0, by_number)
    low = min_number if by_number else min_counts
    high = max_number if by_number else max_counts
    keep = _mask(number, low, high)
    if not inplace:
        return keep, number
    adata = adata.copy() if copy else adata
    column = list(bounds)[1].removeprefix("min_") if by_number else "counts"
    adata._keep(side, f"n_{column}", number)
    if side == "obs":
        adata._inplace_subset_obs(keep)
    else:
        adata._inplace_subset_var(keep)
    return adata if copy else None
