"""``highly_variable_genes``: scanpy's seurat, cell_ranger and seurat_v3 flavors on streamed
per-gene statistics.

Only the per-gene (per batch) sums need the data, so one streamed pass suffices (two for
seurat_v3, whose clipped sums depend on the loess fit); the binning, normalisation and
ranking follow scanpy 1.11's code on those statistics, so the selection is the same.
"""

from __future__ import annotations

import warnings
from inspect import signature

import numpy as np
import pandas as pd

from slaf.integrations.anndata import LazyAnnData
from slaf.pp._stream import blocks, check_adata, matrix, mean_var, row_ids

FLAVORS = ("seurat", "cell_ranger", "seurat_v3", "seurat_v3_paper")
# scipy.stats.norm.ppf(0.75), statsmodels' MAD constant (importing scipy.stats costs ~1 s)
_NORMAL_Q3 = 0.6744897501960817


class _BatchSums:
    """Per (batch, gene) float64 sums, sums of squares and counts of values > 0."""

    def __init__(self, n_batches: int, n_genes: int) -> None:
        self.sums = np.zeros((n_batches, n_genes))
        self.squares = np.zeros((n_batches, n_genes))
        self.positive = np.zeros((n_batches, n_genes), dtype=np.int64)
        self.cells = np.zeros(n_batches, dtype=np.int64)

    def add(self, batch: np.ndarray, genes: np.ndarray, values: np.ndarray, raw: np.ndarray):
        n_genes = self.sums.shape[1]
        flat = batch * n_genes + genes
        size = self.sums.size
        self.sums += np.bincount(flat, weights=values, minlength=size).reshape(self.sums.shape)
        self.squares += np.bincount(flat, weights=values * values, minlength=size).reshape(
            self.sums.shape
        )
        self.positive += np.bincount(flat[raw > 0], minlength=size).reshape(self.sums.shape)

    def mean_var(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        return mean_var(self.sums[b], self.squares[b], int(self.cells[b]))


def _batches(
    adata: LazyAnnData, batch_key: str | None, categories: bool
) -> tuple[np.ndarray, list]:
    """Per-cell batch codes and the batch labels (scanpy's order for each flavor)."""
    if batch_key is None:
        return np.zeros(adata.n_obs, dtype=np.int64), [0]
    if batch_key not in adata.obs.columns:
        raise KeyError(f"batch_key {batch_key!r} is not a column of adata.obs")
    column = adata.obs[batch_key]
    if categories:  # dispersion flavors: sanitize_anndata's categories, in their order
        cat = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
        codes = cat.cat.codes.to_numpy().astype(np.int64)
        if (codes < 0).any():
            raise ValueError(f"batch_key {batch_key!r} has missing values")
        return codes, list(cat.cat.categories)
    if column.isna().any():
        raise ValueError(f"batch_key {batch_key!r} has missing values")
    labels, codes = np.unique(column.to_numpy(), return_inverse=True)
    return codes.astype(np.int64), list(labels)


def _stream_sums(
    adata: LazyAnnData, layer: str | None, codes: np.ndarray, n_batches: int, expm1_base: object
) -> _BatchSums:
    """One pass: per-batch sums of X (``expm1``-ed for seurat, with the log base)."""
    source = matrix(adata, layer)
    out = _BatchSums(n_batches, source.shape[1])
    out.cells = np.bincount(codes, minlength=n_batches)
    for lo, block in blocks(source):
        raw = block.data
        values = raw
        if expm1_base is not False:
            values = raw.copy()
            if expm1_base is not None:
                values *= np.log(expm1_base)
            values = np.expm1(values)  # in the data's dtype, as scanpy
        batch = codes[lo + row_ids(block)]
        out.add(batch, block.indices, values.astype(np.float64), raw)
    return out


# -- dispersion flavors (seurat, cell_ranger), after scanpy's _highly_variable_genes.py ----


def _mad(a: pd.Series) -> float:
    # statsmodels.robust.mad: median absolute deviation over the normal's 3/4 quantile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        values = np.asarray(a, dtype=float)
        return float(np.median(np.abs(values - np.median(values))) / _NORMAL_Q3)


def _disp_stats(df: pd.DataFrame, flavor: str) -> pd.DataFrame:
    grouped = df.groupby("mean_bin", observed=True)["dispersions"]
    if flavor == "seurat":
        stats = grouped.agg(avg="mean", dev="std")
        # a bin with one gene: its normalised dispersion becomes 1 (as scanpy)
        single = stats["dev"].isnull()
        if single.loc[df["mean_bin"]].any():
            stats.loc[single, "dev"] = stats.loc[single, "avg"]
            stats.loc[single, "avg"] = 0
    else:
        stats = grouped.agg(avg="median", dev=_mad)
    return stats.loc[df["mean_bin"]].set_index(df.index)


def _nth_highest(x: np.ndarray, n: int) -> float:
    x = x[~np.isnan(x)]
    if n > x.size:
        warnings.warn(
            "`n_top_genes` > number of normalized dispersions, returning all genes with "
            "normalized dispersions.",
            UserWarning,
            stacklevel=5,
        )
        n = x.size
    x[::-1].sort()
    return x[n - 1]


def _in_bounds(cutoffs: dict, mean: np.ndarray, disp: np.ndarray) -> np.ndarray:
    return (
        (mean > cutoffs["min_mean"])
        & (mean < cutoffs["max_mean"])
        & (disp > cutoffs["min_disp"])
        & (disp < cutoffs["max_disp"])
    )


def _dispersion_table(
    mean: np.ndarray, var: np.ndarray, names: pd.Index, flavor: str, n_bins: int, cutoff
) -> pd.DataFrame:
    """scanpy's single-batch table from per-gene mean and variance (ddof 1)."""
    mean = mean.copy()
    mean[mean == 0] = 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = var / mean
        if flavor == "seurat":
            dispersion[dispersion == 0] = np.nan
            dispersion = np.log(dispersion)
            mean = np.log1p(mean)
    df = pd.DataFrame({"means": mean, "dispersions": dispersion})
    if flavor == "seurat":
        bins = n_bins
    else:
        bins = np.r_[-np.inf, np.percentile(df["means"], np.arange(10, 105, 5)), np.inf]
    df["mean_bin"] = pd.cut(df["means"], bins=bins)
    stats = _disp_stats(df, flavor)
    df["dispersions_norm"] = (df["dispersions"] - stats["avg"]) / stats["dev"]
    disp_norm = df["dispersions_norm"].to_numpy()
    if isinstance(cutoff, dict):
        df["highly_variable"] = _in_bounds(cutoff, mean, np.nan_to_num(disp_norm))
    else:
        n_top = min(cutoff, len(df))
        threshold = _nth_highest(disp_norm.copy(), n_top)
        df["highly_variable"] = np.nan_to_num(disp_norm, nan=-np.inf) >= threshold
    df.index = names
    return df


def _dispersion_flavor(
    adata: LazyAnnData, layer: str | None, flavor: str, n_bins: int, cutoff, batch_key
) -> pd.DataFrame:
    codes, labels = _batches(adata, batch_key, categories=True)
    base = adata.uns.get("log1p", {}).get("base") if flavor == "seurat" else None
    sums = _stream_sums(adata, layer, codes, len(labels), base if flavor == "seurat" else False)
    names = adata.var_names
    if batch_key is None:
        mean, var = sums.mean_var(0)
        return _dispersion_table(mean, var, names, flavor, n_bins, cutoff)
    tables = []
    for b in range(len(labels)):
        mean, var = sums.mean_var(b)
        expressed = sums.positive[b] >= 1  # scanpy drops genes not expressed in the batch
        df = _dispersion_table(
            mean[expressed], var[expressed], names[expressed], flavor, n_bins, cutoff
        )
        if (~expressed).any():
            missing = pd.DataFrame(
                np.zeros((int((~expressed).sum()), len(df.columns))), columns=df.columns
            )
            missing["highly_variable"] = missing["highly_variable"].astype(bool)
            missing.index = names[~expressed]
            df = pd.concat([df, missing]).loc[names]
        tables.append(df)
    df = pd.concat(tables, axis=0)
    df["highly_variable"] = df["highly_variable"].astype(int)
    df = df.groupby(df.index, observed=True).agg(
        {
            "means": "mean",
            "dispersions": "mean",
            "dispersions_norm": "mean",
            "highly_variable": "sum",
        }
    )
    df["highly_variable_nbatches"] = df["highly_variable"]
    df["highly_variable_intersection"] = df["highly_variable_nbatches"] == len(labels)
    if isinstance(cutoff, dict):
        df["dispersions_norm"] = df["dispersions_norm"].fillna(0)
        df["highly_variable"] = _in_bounds(cutoff, df["means"], df["dispersions_norm"])
    else:
        df = df.sort_values(
            ["highly_variable_nbatches", "dispersions_norm"], ascending=False, na_position="last"
        )
        df["highly_variable"] = np.arange(df.shape[0]) < cutoff
    return df.loc[names]


# -- seurat_v3, after scanpy's _highly_variable_genes_seurat_v3 -----------------------------


def _seurat_v3(
    adata: LazyAnnData,
    flavor: str,
    layer: str | None,
    n_top_genes: int,
    batch_key: str | None,
    check_values: bool,
    span: float,
) -> pd.DataFrame:
    try:
        from skmisc.loess import loess
    except ImportError as err:
        raise ImportError(
            "flavor='seurat_v3' needs scikit-misc (its loess, as scanpy): pip install scikit-misc"
        ) from err
    codes, labels = _batches(adata, batch_key, categories=False)
    source = matrix(adata, layer)
    n_genes = source.shape[1]
    sums = _BatchSums(len(labels), n_genes)
    sums.cells = np.bincount(codes, minlength=len(labels))
    integers = True
    for lo, block in blocks(source):
        data = block.data
        if check_values and integers:
            integers = bool(np.all(data >= 0) and np.all(np.mod(data, 1) == 0))
        sums.add(codes[lo + row_ids(block)], block.indices, data.astype(np.float64), data)
    if check_values and not integers:
        warnings.warn(
            f"`flavor={flavor!r}` expects raw count data, but non-integers were found.",
            UserWarning,
            stacklevel=3,
        )
    df = pd.DataFrame(index=adata.var_names)
    df["means"], df["variances"] = mean_var(sums.sums.sum(0), sums.squares.sum(0), adata.n_obs)

    # the loess fit per batch, then the clipped sums in a second pass
    fits = []
    for b in range(len(labels)):
        mean, var = sums.mean_var(b)
        not_const = var > 0
        estimate = np.zeros(n_genes)
        model = loess(np.log10(mean[not_const]), np.log10(var[not_const]), span=span, degree=2)
        model.fit()
        estimate[not_const] = model.outputs.fitted_values
        reg_std = np.sqrt(10**estimate)
        clip = reg_std * np.sqrt(sums.cells[b]) + mean
        fits.append((mean, reg_std, clip))
    clip_all = np.stack([f[2] for f in fits])
    clipped = np.zeros((len(labels), n_genes))
    clipped_sq = np.zeros((len(labels), n_genes))
    for lo, block in blocks(source):
        batch = codes[lo + row_ids(block)]
        values = np.minimum(block.data.astype(np.float64), clip_all[batch, block.indices])
        flat = batch * n_genes + block.indices
        clipped += np.bincount(flat, weights=values, minlength=clipped.size).reshape(clipped.shape)
        clipped_sq += np.bincount(flat, weights=values * values, minlength=clipped.size).reshape(
            clipped.shape
        )
    norm_gene_vars = []
    for b, (mean, reg_std, _) in enumerate(fits):
        n_obs = sums.cells[b]
        norm = (1 / ((n_obs - 1) * np.square(reg_std))) * (
            (n_obs * np.square(mean)) + clipped_sq[b] - 2 * clipped[b] * mean
        )
        norm_gene_vars.append(norm.reshape(1, -1))
    norm_gene_vars = np.concatenate(norm_gene_vars, axis=0)
    ranked = np.argsort(np.argsort(-norm_gene_vars, axis=1), axis=1).astype(np.float32)
    nbatches = np.sum((ranked < n_top_genes).astype(int), axis=0)
    ranked[ranked >= n_top_genes] = np.nan
    median_ranked = np.ma.median(np.ma.masked_invalid(ranked), axis=0).filled(np.nan)
    df["gene_name"] = df.index
    df["highly_variable_nbatches"] = nbatches
    df["highly_variable_rank"] = median_ranked
    df["variances_norm"] = np.mean(norm_gene_vars, axis=0)
    if flavor == "seurat_v3":
        sort_cols, ascending = ["highly_variable_rank", "highly_variable_nbatches"], [True, False]
    else:
        sort_cols, ascending = ["highly_variable_nbatches", "highly_variable_rank"], [False, True]
    order = df[sort_cols].sort_values(sort_cols, ascending=ascending, na_position="last").index
    df["highly_variable"] = False
    df.loc[order[: int(n_top_genes)], "highly_variable"] = True
    return df


def highly_variable_genes(
    adata: LazyAnnData,
    *,
    layer: str | None = None,
    n_top_genes: int | None = None,
    min_disp: float = 0.5,
    max_disp: float = np.inf,
    min_mean: float = 0.0125,
    max_mean: float = 3,
    span: float = 0.3,
    n_bins: int = 20,
    flavor: str = "seurat",
    subset: bool = False,
    inplace: bool = True,
    batch_key: str | None = None,
    check_values: bool = True,
) -> pd.DataFrame | None:
    """Annotate highly variable genes, as ``scanpy.pp.highly_variable_genes``.

    ``seurat`` and ``cell_ranger`` expect log data (X after ``normalize_total`` + ``log1p``);
    ``seurat_v3`` / ``seurat_v3_paper`` expect counts (usually ``layer`` or X before
    normalising) and need ``scikit-misc``. Statistics are streamed per gene (and batch).

    Parameters
    ----------
    adata
        The dataset view.
    layer
        Use this layer instead of X.
    n_top_genes
        Number of genes to select (required meaning for seurat_v3, default 2000 there).
    min_disp, max_disp, min_mean, max_mean
        Cut-offs when ``n_top_genes`` is not given (dispersion flavors).
    span
        The loess span (seurat_v3).
    n_bins
        Number of mean bins (seurat).
    flavor
        ``"seurat"``, ``"cell_ranger"``, ``"seurat_v3"`` or ``"seurat_v3_paper"``.
    subset
        Narrow ``adata`` to the selected genes.
    inplace
        Add the columns to ``adata.var``; else return them.
    batch_key
        An ``adata.obs`` column: select within each batch and merge, as scanpy.
    check_values
        Warn when seurat_v3's data are not non-negative integers.

    Returns
    -------
    pandas.DataFrame or None

    Examples
    --------
    >>> slaf.pp.highly_variable_genes(adata, n_top_genes=2000)        # doctest: +SKIP
    >>> adata.var["highly_variable"].sum()                            # doctest: +SKIP
    2000
    """
    adata = check_adata(adata, "highly_variable_genes")
    if flavor not in FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}: use one of {', '.join(FLAVORS)}")
    if flavor in ("seurat_v3", "seurat_v3_paper"):
        if n_top_genes is None:
            n_top_genes = 2000
        df = _seurat_v3(adata, flavor, layer, n_top_genes, batch_key, check_values, span)
        if inplace:
            adata.uns["hvg"] = {"flavor": flavor}
            columns = ["highly_variable", "highly_variable_rank", "means", "variances"]
            for column in columns:
                adata._keep("var", column, df[column].to_numpy())
            adata._keep("var", "variances_norm", df["variances_norm"].to_numpy().astype("float64"))
            if batch_key is not None:
                adata._keep(
                    "var", "highly_variable_nbatches", df["highly_variable_nbatches"].to_numpy()
                )
            if subset:
                adata._inplace_subset_var(df["highly_variable"].to_numpy())
            return None
        if batch_key is None:
            df = df.drop(["highly_variable_nbatches"], axis=1)
        return df.iloc[df["highly_variable"].to_numpy(), :] if subset else df

    cutoffs = {
        "min_disp": min_disp,
        "max_disp": max_disp,
        "min_mean": min_mean,
        "max_mean": max_mean,
    }
    if n_top_genes is None:
        cutoff: dict | int = cutoffs
    else:
        defaults = {
            name: p.default
            for name, p in signature(highly_variable_genes).parameters.items()
            if name in cutoffs
        }
        if cutoffs != defaults:
            warnings.warn(
                "If you pass `n_top_genes`, all cutoffs are ignored.", UserWarning, stacklevel=2
            )
        cutoff = int(n_top_genes)
    df = _dispersion_flavor(adata, layer, flavor, n_bins, cutoff, batch_key)
    if not inplace:
        return df.loc[df["highly_variable"]] if subset else df
    adata.uns["hvg"] = {"flavor": flavor}
    adata._keep("var", "highly_variable", df["highly_variable"].to_numpy())
    adata._keep("var", "means", df["means"].to_numpy())
    adata._keep("var", "dispersions", df["dispersions"].to_numpy())
    adata._keep("var", "dispersions_norm", df["dispersions_norm"].to_numpy().astype(np.float32))
    if batch_key is not None:
        adata._keep("var", "highly_variable_nbatches", df["highly_variable_nbatches"].to_numpy())
        adata._keep(
            "var", "highly_variable_intersection", df["highly_variable_intersection"].to_numpy()
        )
    if subset:
        adata._inplace_subset_var(df["highly_variable"].to_numpy())
    return None
