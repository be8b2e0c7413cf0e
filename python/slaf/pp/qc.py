"""``calculate_qc_metrics``: scanpy's per-cell and per-gene QC columns in one streamed pass."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from slaf import _native
from slaf.integrations.anndata import LazyAnnData
from slaf.pp._stream import (
    STORED_NONZERO,
    STORED_TOTAL,
    blocks,
    check_adata,
    matrix,
    row_ids,
    stored_stats,
)


def _top_shares(block: sp.csr_matrix, values: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """Per row, the sum of its ``n`` largest ``values`` for each ``n`` in ``ns`` (sorted):
    a selection per row in the core, rows in parallel."""
    indptr = np.asarray(block.indptr, dtype=np.int64)
    return _native.top_sums(indptr, values, [int(n) for n in ns])


def _streamed(source: Any, masks: list[np.ndarray], ns: np.ndarray) -> tuple[np.ndarray, ...]:
    """The metrics' sums in one pass over ``source``: per cell the number of genes, the total,
    the top-``ns`` sums and the ``masks``' totals; per gene the number of cells and the total."""
    n_obs, n_vars = source.shape
    n_genes = np.zeros(n_obs, dtype=np.int64)
    totals = np.zeros(n_obs)
    tops = np.zeros((n_obs, len(ns)))
    qc_totals = np.zeros((len(masks), n_obs))
    n_cells = np.zeros(n_vars, dtype=np.int64)
    gene_totals = np.zeros(n_vars)
    for lo, block in blocks(source):
        block.eliminate_zeros()
        hi = lo + block.shape[0]
        values = block.data.astype(np.float64)
        rows = row_ids(block)
        n_genes[lo:hi] = np.diff(block.indptr)
        totals[lo:hi] = np.bincount(rows, weights=values, minlength=hi - lo)
        if len(ns):
            tops[lo:hi] = _top_shares(block, values, ns)
        for i, mask in enumerate(masks):
            hit = mask[block.indices]
            qc_totals[i, lo:hi] = np.bincount(rows[hit], weights=values[hit], minlength=hi - lo)
        n_cells += np.bincount(block.indices, minlength=n_vars)
        gene_totals += np.bincount(block.indices, weights=values, minlength=n_vars)
    return n_genes, totals, tops, qc_totals, n_cells, gene_totals


def _from_statistics(adata: LazyAnnData, masks: list[np.ndarray]) -> tuple[np.ndarray, ...] | None:
    """:func:`_streamed`'s sums (without top shares) from the dataset's stored statistics and
    a read of the ``masks``' genes only (few genes over all cells: the gene-major table), when
    the statistics describe ``adata.X``; ``None`` otherwise."""
    cells, genes = stored_stats(adata, 1), stored_stats(adata, 0)
    if cells is None or genes is None:
        return None
    n_obs = adata.n_obs
    qc_totals = np.zeros((len(masks), n_obs))
    for i, mask in enumerate(masks):
        ids = np.flatnonzero(mask).astype(np.int64)
        if not len(ids):
            continue
        x = adata.slaf.get_submatrix(None, ids, format="csr")
        rows = row_ids(x)
        qc_totals[i] = np.bincount(rows, weights=x.data.astype(np.float64), minlength=n_obs)
    return (
        cells[STORED_NONZERO[1]].to_numpy().astype(np.int64),
        cells[STORED_TOTAL].to_numpy(),
        np.zeros((n_obs, 0)),
        qc_totals,
        genes[STORED_NONZERO[0]].to_numpy().astype(np.int64),
        genes[STORED_TOTAL].to_numpy(),
    )


def calculate_qc_metrics(
    adata: LazyAnnData,
    *,
    expr_type: str = "counts",
    var_type: str = "genes",
    qc_vars: Collection[str] | str = (),
    percent_top: Collection[int] | None = (50, 100, 200, 500),
    layer: str | None = None,
    use_raw: bool = False,
    inplace: bool = False,
    log1p: bool = True,
    parallel: bool | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Quality-control metrics per cell and per gene, as ``scanpy.pp.calculate_qc_metrics``.

    One streamed pass over X (or ``layer``): memory holds the per-cell and per-gene outputs.
    With ``percent_top=None`` on a whole, untransformed dataset whose statistics are stored
    (``slaf convert`` writes them, ``slaf index`` adds them) there is no pass: the sums come
    from the statistics and the ``qc_vars`` genes alone are read.

    Parameters
    ----------
    adata
        The dataset view.
    expr_type, var_type
        Names used in the column names (``total_counts``, ``n_genes_by_counts``).
    qc_vars
        Boolean ``adata.var`` columns (e.g. ``"mt"``) whose share of each cell's total is
        reported.
    percent_top
        Report the share of each cell's total in its top ``n`` genes for each ``n``.
    layer
        A layer to use instead of X.
    use_raw
        Not supported: SLAF keeps a source's ``raw`` as the layer ``"raw"``.
    inplace
        Add the columns to ``adata.obs`` / ``adata.var`` instead of returning them.
    log1p
        Also add the ``log1p_`` columns.
    parallel
        Deprecated in scanpy and ignored there too.

    Returns
    -------
    tuple of pandas.DataFrame or None
        ``(obs_metrics, var_metrics)`` unless ``inplace``.

    Examples
    --------
    >>> adata = slaf.read_slaf("pbmc.slaf")                           # doctest: +SKIP
    >>> adata.var["mt"] = adata.var_names.str.startswith("MT-")       # doctest: +SKIP
    >>> slaf.pp.calculate_qc_metrics(adata, qc_vars=["mt"], inplace=True)  # doctest: +SKIP
    >>> adata.obs["pct_counts_mt"].head()                             # doctest: +SKIP
    """
    adata = check_adata(adata, "calculate_qc_metrics")
    if use_raw:
        raise ValueError('use_raw is not supported: SLAF stores raw as the layer "raw"')
    if isinstance(qc_vars, str):
        qc_vars = [qc_vars]
    source = matrix(adata, layer)
    n_obs, n_vars = source.shape
    masks = []
    for name in qc_vars:
        if name not in adata.var.columns:
            raise KeyError(f"qc_vars: {name!r} is not a column of adata.var")
        masks.append(np.asarray(adata.var[name].to_numpy(), dtype=bool))
    ns = np.sort(np.asarray(list(percent_top or ()), dtype=np.int64))
    if len(ns) and not (ns[-1] <= n_vars and ns[0] > 0):
        raise IndexError(
            f"Positions outside range of features: percent_top {int(ns[-1])} with {n_vars} genes"
        )

    dtype = source.dtype
    stored = None if layer is not None or len(ns) else _from_statistics(adata, masks)
    n_genes, totals, tops, qc_totals, n_cells, gene_totals = stored or _streamed(source, masks, ns)

    # scanpy sums in the data's dtype: keep its column dtypes
    out_dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
    obs = pd.DataFrame(index=adata.obs_names)
    obs[f"n_{var_type}_by_{expr_type}"] = n_genes
    if log1p:
        obs[f"log1p_n_{var_type}_by_{expr_type}"] = np.log1p(n_genes)
    obs[f"total_{expr_type}"] = totals.astype(out_dtype)
    if log1p:
        obs[f"log1p_total_{expr_type}"] = np.log1p(obs[f"total_{expr_type}"])
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, n in enumerate(ns):
            obs[f"pct_{expr_type}_in_top_{n}_{var_type}"] = tops[:, i] / totals * 100
        for name, qc_total in zip(qc_vars, qc_totals, strict=True):
            obs[f"total_{expr_type}_{name}"] = qc_total.astype(out_dtype)
            if log1p:
                obs[f"log1p_total_{expr_type}_{name}"] = np.log1p(obs[f"total_{expr_type}_{name}"])
            obs[f"pct_{expr_type}_{name}"] = (
                obs[f"total_{expr_type}_{name}"] / obs[f"total_{expr_type}"] * 100
            )

    var = pd.DataFrame(index=adata.var_names)
    var[f"n_cells_by_{expr_type}"] = n_cells
    var[f"mean_{expr_type}"] = gene_totals / max(n_obs, 1)
    if log1p:
        var[f"log1p_mean_{expr_type}"] = np.log1p(var[f"mean_{expr_type}"])
    var[f"pct_dropout_by_{expr_type}"] = (1 - n_cells / max(n_obs, 1)) * 100
    var[f"total_{expr_type}"] = gene_totals.astype(out_dtype)
    if log1p:
        var[f"log1p_total_{expr_type}"] = np.log1p(var[f"total_{expr_type}"])

    if not inplace:
        return obs, var
    adata._keep("obs", obs.columns, obs)
    adata._keep("var", var.columns, var)
    return None
