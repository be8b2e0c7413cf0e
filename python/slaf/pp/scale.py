"""``scale``: per-gene standardisation, recorded on the LazyAnnData and applied lazily."""

from __future__ import annotations

import numpy as np

from slaf.integrations.anndata import LazyAnnData, Scale
from slaf.pp._stream import blocks, check_adata, mean_var, x_only


def gene_moments(adata: LazyAnnData) -> tuple[np.ndarray, np.ndarray]:
    """float64 per-gene sums and sums of squares of X (as transformed so far), streamed."""
    sums = np.zeros(adata.n_vars)
    squares = np.zeros(adata.n_vars)
    for _, block in blocks(adata.X):
        values = block.data.astype(np.float64)
        sums += np.bincount(block.indices, weights=values, minlength=adata.n_vars)
        squares += np.bincount(block.indices, weights=values * values, minlength=adata.n_vars)
    return sums, squares


def scale(
    data: LazyAnnData,
    *,
    zero_center: bool = True,
    max_value: float | None = None,
    copy: bool = False,
    layer: str | None = None,
    obsm: str | None = None,
    mask_obs: np.ndarray | str | None = None,
) -> LazyAnnData | None:
    """Scale each gene to unit variance (and zero mean), as ``scanpy.pp.scale``.

    One streamed pass for the per-gene mean and standard deviation (added to ``var`` as
    ``mean`` and ``std``); the scaling is recorded and applied as blocks are read, so X is
    never densified whole. Blocks read afterwards are dense when ``zero_center``.

    Parameters
    ----------
    data
        The dataset view.
    zero_center
        Subtract the mean; without it sparse X stays sparse.
    max_value
        Clip to ``[-max_value, max_value]`` (only above without ``zero_center``).
    copy
        Return a lazy copy with the scaling instead.
    layer, obsm, mask_obs
        Not supported lazily: X only, statistics over all cells of the view.

    Returns
    -------
    LazyAnnData or None

    Examples
    --------
    >>> slaf.pp.scale(adata, max_value=10)                            # doctest: +SKIP
    >>> adata[:5].X.compute()                                         # dense 5 × n_vars
    ... # doctest: +SKIP
    """
    adata = check_adata(data, "scale")
    x_only(layer, "scale")
    if obsm is not None or mask_obs is not None:
        raise NotImplementedError("slaf.pp.scale supports neither obsm nor mask_obs")
    adata = adata.copy() if copy else adata
    sums, squares = gene_moments(adata)
    mean, var = mean_var(sums, squares, adata.n_obs)
    std = np.sqrt(var)
    std[std == 0] = 1
    n_genes = adata.slaf.shape[1]
    genes = np.arange(n_genes) if adata._genes is None else adata._genes
    full_mean = np.zeros(n_genes)
    full_std = np.ones(n_genes)
    full_mean[genes] = mean
    full_std[genes] = std
    adata._add_transform(Scale(full_mean, full_std, zero_center, max_value))
    adata._keep("var", "mean", mean)
    adata._keep("var", "std", std)
    return adata if copy else None
