"""``pca``: PCA of the selected genes, streamed over cell blocks.

Up to a few thousand genes (e.g. 2,000 highly variable ones) it is exact: one pass
accumulates ``XᵀX`` (g × g: 32 MB for 2,000 genes), its eigendecomposition gives the
components (scanpy's arpack result, without its iterations). With more genes, or
``svd_solver="randomized"``, subspace iteration multiplies the covariance with a genes × 2k
basis, one pass per iteration (memory genes × 2k). Then one pass projects the cells, sparse
blocks staying sparse (centring is a shift). Memory is independent of the number of cells
apart from the embedding; the dense cells × genes matrix is never formed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dsyrk

from slaf.integrations.anndata import LazyAnnData, LazyExpressionMatrix
from slaf.pp._stream import check_adata, matrix

_EMPTY = object()  # scanpy's "mask_var not given"
# Dense rows × genes per block, in values (~16 MB of float64: large enough for BLAS, small
# next to the Gram matrix).
_DENSE_VALUES = 2_000_000
# Above this many genes the Gram matrix (genes² float64: 288 MB at 6,000) gives way to
# subspace iteration, as does svd_solver="randomized".
_GRAM_MAX_GENES = 6_000
_OVERSAMPLE = 20
_SUBSPACE_ITERATIONS = 20


def _dense_blocks(source: LazyExpressionMatrix) -> Any:
    """Dense float64 row blocks of at most ``_DENSE_VALUES`` values."""
    n_genes = max(1, source.shape[1])
    rows = max(1, _DENSE_VALUES // n_genes)
    for block in source.chunks():
        for lo in range(0, block.shape[0], rows):
            part = block[lo : lo + rows]
            yield (
                part.astype(np.float64).toarray()  # no float32 dense copy on the way
                if sp.issparse(part)
                else np.asarray(part, dtype=np.float64)
            )


def _gene_moments(source: LazyExpressionMatrix) -> tuple[np.ndarray, np.ndarray]:
    """float64 per-gene sums and sums of squares, streamed."""
    n_genes = source.shape[1]
    sums, squares = np.zeros(n_genes), np.zeros(n_genes)
    for block in source.chunks():
        if sp.issparse(block):
            values = block.data.astype(np.float64)
            sums += np.bincount(block.indices, weights=values, minlength=n_genes)
            squares += np.bincount(block.indices, weights=values * values, minlength=n_genes)
        else:
            dense = np.asarray(block, dtype=np.float64)
            sums += dense.sum(axis=0)
            squares += (dense * dense).sum(axis=0)
    return sums, squares


def _by_gram(
    source: LazyExpressionMatrix, sums: np.ndarray, n_comps: int, zero_center: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Exact: the top eigenpairs of the streamed Gram (or covariance) matrix."""
    n_obs, n_genes = source.shape
    # Only the upper triangle is accumulated (BLAS syrk: half of `dense.T @ dense`'s work);
    # a C-ordered block is its transpose in Fortran order, which syrk takes without a copy.
    gram = np.zeros((n_genes, n_genes), order="F")
    for dense in _dense_blocks(source):
        gram = dsyrk(1.0, dense.T, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)
    gram = np.triu(gram) + np.triu(gram, 1).T
    if zero_center:
        gram = (gram - np.outer(sums, sums / n_obs)) / max(1, n_obs - 1)
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:n_comps]
    return values[top], vectors[:, top].T


def _times_covariance(
    source: LazyExpressionMatrix, basis: np.ndarray, mean: np.ndarray, zero_center: bool
) -> np.ndarray:
    """One pass: the covariance (or Gram) matrix times ``basis`` (genes × l), implicitly."""
    n_obs = source.shape[0]
    out = np.zeros_like(basis)
    for block in source.chunks():
        if not sp.issparse(block):
            block = np.asarray(block, dtype=np.float64)
        out += np.asarray(block.T @ np.asarray(block @ basis))
    if zero_center:
        out = (out - n_obs * np.outer(mean, mean @ basis)) / max(1, n_obs - 1)
    return out


def _by_subspace(
    source: LazyExpressionMatrix,
    mean: np.ndarray,
    n_comps: int,
    zero_center: bool,
    random_state: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Too many genes for a Gram matrix: subspace iteration, one pass per iteration, memory
    genes × (n_comps + oversampling)."""
    n_genes = source.shape[1]
    width = min(n_genes, n_comps + max(_OVERSAMPLE, n_comps))
    if isinstance(random_state, np.random.RandomState):
        start = random_state.standard_normal((n_genes, width))
    else:
        start = np.random.default_rng(random_state).standard_normal((n_genes, width))
    basis = np.linalg.qr(start)[0]
    for _ in range(_SUBSPACE_ITERATIONS):
        basis = np.linalg.qr(_times_covariance(source, basis, mean, zero_center))[0]
    # Rayleigh-Ritz on the converged subspace
    small = basis.T @ _times_covariance(source, basis, mean, zero_center)
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    top = np.argsort(values)[::-1][:n_comps]
    return values[top], (basis @ vectors[:, top]).T


def _mask_var(adata: LazyAnnData, mask_var: Any, use_highly_variable: bool | None) -> tuple:
    """scanpy's ``_handle_mask_var``: (parameter as recorded, boolean mask or None)."""
    if use_highly_variable is not None:
        hint = (
            'Use_highly_variable=True can be called through mask_var="highly_variable". '
            "Use_highly_variable=False can be called through mask_var=None"
        )
        warnings.warn(
            "Argument `use_highly_variable` is deprecated, consider using the mask argument. "
            + hint,
            FutureWarning,
            stacklevel=3,
        )
        if mask_var is not _EMPTY:
            raise ValueError(f"These arguments are incompatible. {hint}")
    if use_highly_variable or (
        use_highly_variable is None
        and mask_var is _EMPTY
        and "highly_variable" in adata.var.columns
    ):
        mask_var = "highly_variable"
    if mask_var is _EMPTY or mask_var is None:
        return None, None
    if isinstance(mask_var, str):
        if mask_var not in adata.var.columns:
            raise KeyError(f"mask_var {mask_var!r} is not a column of adata.var")
        mask = np.asarray(adata.var[mask_var].to_numpy(), dtype=bool)
    else:
        mask = np.asarray(mask_var, dtype=bool)
    if mask.shape != (adata.n_vars,):
        raise ValueError(f"mask_var needs {adata.n_vars} booleans, not shape {mask.shape}")
    return mask_var, mask


def pca(
    data: LazyAnnData,
    n_comps: int | None = None,
    *,
    layer: str | None = None,
    zero_center: bool = True,
    svd_solver: str | None = None,
    chunked: bool = False,
    chunk_size: int | None = None,
    random_state: Any = 0,
    return_info: bool = False,
    mask_var: Any = _EMPTY,
    use_highly_variable: bool | None = None,
    dtype: Any = "float32",
    key_added: str | None = None,
    copy: bool = False,
) -> LazyAnnData | None:
    """Principal components of X, as ``scanpy.pp.pca``, streamed.

    Exact up to 6,000 genes (the eigendecomposition of the streamed covariance of the
    selected genes), so it equals scanpy's ``arpack`` result up to each component's sign;
    beyond that, or with ``svd_solver="randomized"``, subspace iteration (20 passes). Uses
    the highly variable genes when ``var["highly_variable"]`` exists (scanpy's default).

    Parameters
    ----------
    data
        The dataset view.
    n_comps
        Number of components; ``None``: 50, or one less than the smaller dimension.
    layer
        Use this layer instead of X.
    zero_center
        Centre the genes (PCA); ``False``: the uncentred truncated SVD.
    mask_var, use_highly_variable
        Genes to use, as scanpy (a boolean mask or a ``var`` column name).
    dtype
        dtype of ``obsm["X_pca"]``.
    key_added
        Store under this key instead of ``X_pca`` / ``PCs`` / ``pca``.
    copy
        Return a lazy copy with the results instead.
    svd_solver
        ``"randomized"``: subspace iteration even for few genes; other names are accepted.
    random_state
        Seed of subspace iteration's start.
    chunked, chunk_size, return_info
        Accepted for scanpy's signature.

    Returns
    -------
    LazyAnnData or None
        ``obsm["X_pca"]`` (n_obs × n_comps), ``varm["PCs"]`` (n_vars × n_comps, zero for
        genes outside the mask) and ``uns["pca"]`` (``variance``, ``variance_ratio``,
        ``params``) are added in memory.

    Examples
    --------
    >>> slaf.pp.pca(adata, n_comps=50)                                # doctest: +SKIP
    >>> adata.obsm["X_pca"].shape                                     # doctest: +SKIP
    (700, 50)
    """
    adata = check_adata(data, "pca")
    adata = adata.copy() if copy else adata
    mask_param, mask = _mask_var(adata, mask_var, use_highly_variable)
    source = matrix(adata, layer)
    if mask is not None:
        source = source[:, np.flatnonzero(mask)]
    n_obs, n_genes = source.shape
    if n_comps is None:
        min_dim = min(n_obs, n_genes)
        n_comps = min_dim - 1 if min_dim <= 50 else 50
    if not 1 <= n_comps <= min(n_obs, n_genes):
        raise ValueError(
            f"n_comps={n_comps} must be between 1 and min(n_obs, n_genes) = "
            f"min({n_obs}, {n_genes}) of the genes used"
        )

    sums, squares = _gene_moments(source)
    mean = sums / n_obs
    if zero_center:
        total = float(np.sum(squares - sums * mean) / max(1, n_obs - 1))
    else:  # sklearn's TruncatedSVD: variances with ddof 0
        total = float(np.sum(squares / n_obs - mean**2))
    if svd_solver == "randomized" or n_genes > _GRAM_MAX_GENES:
        values, components = _by_subspace(source, mean, n_comps, zero_center, random_state)
    else:
        values, components = _by_gram(source, sums, n_comps, zero_center)
    # sklearn's svd_flip (u_based_decision=False): the largest loading of each is positive
    signs = np.sign(components[np.arange(n_comps), np.argmax(np.abs(components), axis=1)])
    components *= np.where(signs == 0, 1, signs)[:, None]

    embedding = np.empty((n_obs, n_comps))
    shift = mean @ components.T if zero_center else np.zeros(n_comps)
    row = 0
    for block in source.chunks():  # sparse blocks stay sparse: centring is a shift
        embedding[row : row + block.shape[0]] = np.asarray(block @ components.T) - shift
        row += block.shape[0]
    if zero_center:
        variance = np.maximum(values, 0)
    else:
        variance = embedding.var(axis=0)
    ratio = variance / total if total > 0 else np.zeros_like(variance)

    key_obsm, key_varm, key_uns = ("X_pca", "PCs", "pca") if key_added is None else [key_added] * 3
    adata._keep("obsm", key_obsm, embedding.astype(dtype))
    loadings = np.zeros((adata.n_vars, n_comps))
    if mask is None:
        loadings[:] = components.T
    else:
        loadings[mask] = components.T
    adata._keep("varm", key_varm, loadings)
    params = {
        "zero_center": zero_center,
        "use_highly_variable": mask_param == "highly_variable",
        "mask_var": mask_param,
    }
    if layer is not None:
        params["layer"] = layer
    adata.uns[key_uns] = {"params": params, "variance": variance, "variance_ratio": ratio}
    return adata if copy else None
