"""``normalize_total`` and ``log1p``: recorded on the LazyAnnData, applied as blocks are read."""

from __future__ import annotations

import warnings
from numbers import Number

import numpy as np

from slaf.integrations.anndata import LazyAnnData, Log1p, NormalizeTotal
from slaf.pp._stream import blocks, check_adata, row_ids, x_only


def _cell_totals(adata: LazyAnnData, genes: np.ndarray | None = None) -> np.ndarray:
    """float64 sum per cell of X (optionally over a gene mask only)."""
    totals = np.zeros(adata.n_obs)
    for lo, block in blocks(adata.X):
        weights = block.data.astype(np.float64)
        if genes is not None:
            weights = np.where(genes[block.indices], weights, 0.0)
        totals[lo : lo + block.shape[0]] = np.bincount(
            row_ids(block), weights=weights, minlength=block.shape[0]
        )
    return totals


def _highly_expressed(adata: LazyAnnData, totals: np.ndarray, max_fraction: float) -> np.ndarray:
    """Genes above ``max_fraction`` of some cell's total (scanpy's CSR rule)."""
    hits = np.zeros(adata.n_vars, dtype=np.int64)
    for lo, block in blocks(adata.X):
        rows = row_ids(block) + lo
        high = block.data > max_fraction * totals[rows]
        hits += np.bincount(block.indices[high], minlength=adata.n_vars)
    return hits > 0


def normalize_total(
    adata: LazyAnnData,
    *,
    target_sum: float | None = None,
    exclude_highly_expressed: bool = False,
    max_fraction: float = 0.05,
    key_added: str | None = None,
    layer: str | None = None,
    inplace: bool = True,
    copy: bool = False,
) -> LazyAnnData | dict[str, np.ndarray] | None:
    """Scale each cell to the same total, as ``scanpy.pp.normalize_total``.

    One streamed pass computes the per-cell totals (three with ``exclude_highly_expressed``);
    the division is recorded on ``adata`` and applied to every block of X read afterwards.

    Parameters
    ----------
    adata
        The dataset view.
    target_sum
        Total of every cell afterwards; ``None``: the median of the cells' totals (scanpy's
        rule for sparse X, zero-count cells included).
    exclude_highly_expressed
        Leave genes holding more than ``max_fraction`` of some cell's total out of the totals.
    max_fraction
        See ``exclude_highly_expressed``.
    key_added
        ``adata.obs`` column for the normalisation factor (total / target_sum).
    layer
        Only X can be normalised lazily; a layer raises NotImplementedError.
    inplace
        Record the normalisation; else return ``{"X": CSR of the normalised view,
        "norm_factor": ...}`` (this reads the whole view).
    copy
        Normalise and return a lazy copy.

    Returns
    -------
    LazyAnnData, dict or None

    Examples
    --------
    >>> adata = slaf.read_slaf("pbmc.slaf")                           # doctest: +SKIP
    >>> slaf.pp.normalize_total(adata, target_sum=1e4)                # doctest: +SKIP
    >>> adata[:10].X.compute().sum(axis=1)                            # doctest: +SKIP
    """
    adata = check_adata(adata, "normalize_total")
    x_only(layer, "normalize_total")
    if copy:
        if not inplace:
            raise ValueError("`copy=True` cannot be used with `inplace=False`.")
        adata = adata.copy()
    if max_fraction < 0 or max_fraction > 1:
        raise ValueError("Choose max_fraction between 0 and 1.")
    dtype = adata.X.dtype
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)
    # scanpy keeps the totals in the data's dtype (float32 for counts)
    totals = _cell_totals(adata).astype(dtype)
    if exclude_highly_expressed:
        keep = ~_highly_expressed(adata, totals, max_fraction)
        totals = _cell_totals(adata, keep).astype(dtype)
    if target_sum is None:
        target_sum = np.median(totals)
    factors = totals / target_sum
    if not np.all(factors > 0):
        warnings.warn("Some cells have zero counts", UserWarning, stacklevel=2)
    # dataset-indexed divisors; a zero total divides by one (scanpy leaves such cells at 0)
    n_cells = adata.slaf.shape[0]
    divisors = np.ones(n_cells, dtype=factors.dtype)
    cells = np.arange(n_cells) if adata._cells is None else adata._cells
    divisors[cells] = np.where(factors == 0, 1, factors)
    step = NormalizeTotal(divisors)
    if not inplace:
        view = adata[:, :]
        view._add_transform(step)
        return {"X": view.X.compute(), "norm_factor": factors}
    if key_added is not None:
        adata._keep("obs", key_added, factors)
    adata._add_transform(step)
    return adata if copy else None


def log1p(
    data: LazyAnnData,
    *,
    base: Number | None = None,
    copy: bool = False,
    chunked: bool | None = None,
    chunk_size: int | None = None,
    layer: str | None = None,
    obsm: str | None = None,
) -> LazyAnnData | None:
    """``log(1 + x)`` of X (divided by ``log(base)`` if given), as ``scanpy.pp.log1p``.

    Recorded on ``adata`` (nothing is read) and applied to every block read afterwards;
    ``uns["log1p"] = {"base": base}`` as scanpy sets it.

    Parameters
    ----------
    data
        The dataset view.
    base
        Logarithm base; ``None`` for the natural logarithm.
    copy
        Return a lazy copy with the transformation instead.
    chunked, chunk_size
        Accepted for scanpy's signature: blocks are always streamed.
    layer, obsm
        Only X is transformed lazily; anything else raises NotImplementedError.

    Returns
    -------
    LazyAnnData or None

    Examples
    --------
    >>> slaf.pp.log1p(adata)                                          # doctest: +SKIP
    >>> adata.uns["log1p"]                                            # doctest: +SKIP
    {'base': None}
    """
    adata = check_adata(data, "log1p")
    x_only(layer, "log1p")
    if obsm is not None:
        raise NotImplementedError("slaf.pp.log1p transforms X only, not obsm")
    if "log1p" in adata.uns:
        warnings.warn("adata.X seems to be already log-transformed.", UserWarning, stacklevel=2)
    adata = adata.copy() if copy else adata
    adata._add_transform(Log1p(None if base is None else float(base)))
    adata.uns["log1p"] = {"base": base}
    return adata if copy else None
