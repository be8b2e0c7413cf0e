"""slaf.pp against scanpy's own preprocessing of the same data, in memory.

The reference is scanpy 1.11.5 (pinned in requirements.txt) run on the AnnData each dataset
came from, with X as CSR (what a LazyAnnData's X is). Tolerances from the issue: QC columns and
normalised values rtol 1e-5, the same cells/genes kept by filters, the same highly variable
genes for seurat and cell_ranger (≥ 99 % for seurat_v3), PCA variance ratios within 1e-3 of
scanpy's arpack and each component's embedding correlated ≥ 0.999 in absolute value.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import sys
import warnings
from pathlib import Path

import anndata as ad
import lance
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import slaf
from slaf import convert
from slaf.integrations import read_slaf

from conftest import FIXTURES, REAL, REPO, needs_shared, source

sc = pytest.importorskip("scanpy")

SCANPY_VERSION = "1.11.5"
REAL_H5AD = [
    "cellxgene_small_perturbations.h5ad",
    "mouse_merfish_val.h5ad",
    "pbmc68k_reduced.h5ad",
]


def test_reference_is_the_pinned_scanpy() -> None:
    assert importlib.metadata.version("scanpy") == SCANPY_VERSION


def _as_csr(adata: ad.AnnData) -> ad.AnnData:
    """The reference AnnData as a LazyAnnData sees it: X a float CSR matrix, no raw."""
    x = adata.X
    x = sp.csr_matrix(x) if not sp.issparse(x) else x.tocsr()
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    x.eliminate_zeros()
    out = ad.AnnData(X=x, obs=adata.obs.copy(), var=adata.var.copy())
    out.obs_names = out.obs_names.astype(str)
    out.var_names = out.var_names.astype(str)
    return out


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _same_columns(
    got: pd.DataFrame, want: pd.DataFrame, columns, rtol: float = 1e-5, atol: float = 1e-12
) -> None:
    for column in columns:
        assert column in got.columns, column
        np.testing.assert_allclose(
            np.asarray(got[column], dtype=float),
            np.asarray(want[column], dtype=float),
            rtol=rtol,
            atol=atol,
            err_msg=column,
        )


def _qc_mask(names: pd.Index) -> np.ndarray:
    mask = names.str.upper().str.startswith("MT-")
    if mask.sum() == 0:  # no mitochondrial genes named: any fixed handful
        mask = np.zeros(len(names), dtype=bool)
        mask[:: max(1, len(names) // 10)] = True
    return np.asarray(mask)


def _recipe_agrees(lazy, mem: ad.AnnData) -> dict[str, float]:
    """qc → filters → normalize_total → log1p → HVG → pca on both, checked step by step.

    Returns the agreement numbers worth reporting.
    """
    report: dict[str, float] = {}
    counts = lazy.copy()  # for seurat_v3, which wants counts
    ref_counts = mem.copy()

    # QC
    for a in (lazy, mem):
        a.var["is_mt"] = _qc_mask(a.var_names)
    top = [n for n in (5, 10, 50, 100, 200, 500) if n <= mem.n_vars][:4]
    want_obs, want_var = sc.pp.calculate_qc_metrics(mem, qc_vars=["is_mt"], percent_top=top)
    got_obs, got_var = slaf.pp.calculate_qc_metrics(lazy, qc_vars=["is_mt"], percent_top=top)
    assert list(got_obs.columns) == list(want_obs.columns)
    assert list(got_var.columns) == list(want_var.columns)
    # Counts: rtol 1e-5. Processed data (pbmc68k_reduced: scaled, both signs) sums to near
    # zero, where scanpy's float32 sums lose digits that our float64 sums keep, and log1p and
    # percentages of such sums amplify that: 1e-3 there.
    tol = {"rtol": 1e-3, "atol": 1e-3} if mem.X.data.min() < 0 else {"rtol": 1e-5}
    _same_columns(got_obs, want_obs, want_obs.columns, **tol)
    _same_columns(got_var, want_var, want_var.columns, **tol)
    slaf.pp.calculate_qc_metrics(lazy, qc_vars=["is_mt"], percent_top=top, inplace=True)
    sc.pp.calculate_qc_metrics(mem, qc_vars=["is_mt"], percent_top=top, inplace=True)
    _same_columns(lazy.obs, mem.obs, want_obs.columns, **tol)
    _same_columns(lazy.var, mem.var, want_var.columns, **tol)
    got_obs, _ = slaf.pp.calculate_qc_metrics(lazy, percent_top=None, log1p=False)
    want_obs, _ = sc.pp.calculate_qc_metrics(mem, percent_top=None, log1p=False)
    assert list(got_obs.columns) == list(want_obs.columns)

    # filters: keep the genes seen in ≥ 3 cells, drop the cells with fewest genes
    signed = mem.X.data.min() < 0
    min_genes = int(np.quantile(np.asarray((mem.X > 0).sum(axis=1)).ravel(), 0.1))
    keep, number = slaf.pp.filter_cells(lazy, min_genes=min_genes, inplace=False)
    want_keep, want_number = sc.pp.filter_cells(mem.X, min_genes=min_genes)
    np.testing.assert_array_equal(keep, want_keep)
    np.testing.assert_array_equal(number, want_number)
    for a, f in ((lazy, slaf.pp), (mem, sc.pp)):
        f.filter_cells(a, min_genes=min_genes)
        f.filter_genes(a, min_cells=3)
    assert list(lazy.obs_names) == list(mem.obs_names)
    assert list(lazy.var_names) == list(mem.var_names)
    _same_columns(lazy.obs, mem.obs, ["n_genes"])
    _same_columns(lazy.var, mem.var, ["n_cells"])

    if signed:
        # processed data: normalising and logging scaled values means nothing (scanpy's log1p
        # rejects the NaNs it makes); its PCA is what users run on it
        n_comps = 30
        slaf.pp.pca(lazy, n_comps=n_comps)
        sc.pp.pca(mem, n_comps=n_comps, svd_solver="arpack")
        _pca_agrees(lazy, mem, n_comps, report)
        return report

    # normalize_total (scanpy's median rule) + log1p
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero-count cells, when present
        slaf.pp.normalize_total(lazy, key_added="norm")
        sc.pp.normalize_total(mem, key_added="norm")
    _same_columns(lazy.obs, mem.obs, ["norm"])
    slaf.pp.log1p(lazy)
    sc.pp.log1p(mem)
    assert lazy.uns["log1p"] == mem.uns["log1p"]
    np.testing.assert_allclose(_dense(lazy[:10].X.compute()), _dense(mem[:10].X), rtol=1e-5)
    np.testing.assert_allclose(_dense(lazy.X.compute()), _dense(mem.X), rtol=1e-5)

    # highly variable genes: seurat (cut-offs and top n), cell_ranger, then seurat_v3 on counts
    n_top = max(10, min(500, mem.n_vars // 4))
    for flavor, kwargs in (
        ("seurat", {}),
        ("seurat", {"n_top_genes": n_top}),
        ("cell_ranger", {"n_top_genes": n_top}),
    ):
        got = slaf.pp.highly_variable_genes(lazy, flavor=flavor, inplace=False, **kwargs)
        want = sc.pp.highly_variable_genes(mem, flavor=flavor, inplace=False, **kwargs)
        np.testing.assert_array_equal(
            got["highly_variable"].to_numpy(), want["highly_variable"].to_numpy(), err_msg=flavor
        )
        # variances near the mean's square lose digits to cancellation: an absolute floor
        _same_columns(got, want, ["means", "dispersions", "dispersions_norm"], 1e-4, 1e-6)
    if np.all(np.mod(ref_counts.X.data, 1) == 0) and ref_counts.X.data.min() >= 0:
        got = slaf.pp.highly_variable_genes(
            counts, flavor="seurat_v3", n_top_genes=n_top, inplace=False
        )
        want = sc.pp.highly_variable_genes(
            ref_counts, flavor="seurat_v3", n_top_genes=n_top, inplace=False
        )
        report["seurat_v3"] = float(
            np.mean(got["highly_variable"].to_numpy() == want["highly_variable"].to_numpy())
        )
        assert report["seurat_v3"] >= 0.99

    # PCA on the highly variable genes
    for f, a in ((slaf.pp, lazy), (sc.pp, mem)):
        f.highly_variable_genes(a, flavor="seurat", n_top_genes=n_top)
    np.testing.assert_array_equal(lazy.var["highly_variable"], mem.var["highly_variable"])
    n_comps = min(30, n_top - 1, lazy.n_obs - 1)
    slaf.pp.pca(lazy, n_comps=n_comps)
    sc.pp.pca(mem, n_comps=n_comps, svd_solver="arpack")
    _pca_agrees(lazy, mem, n_comps, report)
    return report


def _pca_agrees(lazy, mem: ad.AnnData, n_comps: int, report: dict[str, float]) -> None:
    got, want = lazy.uns["pca"], mem.uns["pca"]
    ratio_gap = np.abs(got["variance_ratio"] - want["variance_ratio"]).max()
    assert ratio_gap <= 1e-3
    assert got["params"] == want["params"]
    np.testing.assert_allclose(got["variance"], want["variance"], rtol=1e-3)
    x_got, x_want = lazy.obsm["X_pca"], mem.obsm["X_pca"]
    assert x_got.shape == x_want.shape == (lazy.n_obs, n_comps)
    assert x_got.dtype == x_want.dtype
    corr = [abs(np.corrcoef(x_got[:, i], x_want[:, i])[0, 1]) for i in range(n_comps)]
    assert min(corr) >= 0.999, corr
    assert lazy.varm["PCs"].shape == mem.varm["PCs"].shape
    report["pca_ratio_gap"] = float(ratio_gap)
    report["pca_min_corr"] = float(min(corr))


@pytest.fixture(scope="module")
def generated_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated multi-fragment dataset (cells split across fragments, uint16 values) and
    the same data as an h5ad written from the Lance table directly."""
    sys.path.insert(0, str(REPO / "benches"))
    from synthetic import ensure_h5ad, generate

    out = tmp_path_factory.mktemp("pp") / "gen.slaf"
    generate(out, n_cells=900, n_genes=400, nnz_per_cell=60, seed=3, rows_per_fragment=7001)
    return out, ensure_h5ad(out)


def test_recipe_on_generated_multi_fragment_data(generated_pair: tuple[Path, Path]) -> None:
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    fragments = lance.dataset(str(path / "expression.lance")).get_fragments()
    assert len(fragments) > 1  # 900 cells × ~60 values in fragments of 7,001 rows
    report = _recipe_agrees(lazy, _as_csr(ad.read_h5ad(h5ad)))
    assert report["seurat_v3"] >= 0.99


@needs_shared
@pytest.mark.parametrize("name", REAL_H5AD)
def test_recipe_on_real_data(name: str, tmp_path: Path) -> None:
    out = tmp_path / "real.slaf"
    convert(REAL / name, out)
    _recipe_agrees(read_slaf(out), _as_csr(ad.read_h5ad(REAL / name)))


def test_recipe_on_slafdb_fixtures(fixture_name: str, tmp_path: Path) -> None:
    # A copy: the recipe's `var["is_mt"] = ...` is written back to the dataset it runs on.
    shutil.copytree(FIXTURES / fixture_name, tmp_path / fixture_name)
    _recipe_agrees(read_slaf(tmp_path / fixture_name), _as_csr(source(fixture_name)))


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger", "seurat_v3"])
def test_hvg_with_batches(generated_pair: tuple[Path, Path], flavor: str) -> None:
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    mem = _as_csr(ad.read_h5ad(h5ad))
    mem.obs["pair"] = pd.Categorical(np.where(np.arange(mem.n_obs) % 3 == 0, "a", "b"))
    lazy.obs["pair"] = mem.obs["pair"].to_numpy()
    if flavor != "seurat_v3":
        for f, a in ((slaf.pp, lazy), (sc.pp, mem)):
            f.normalize_total(a, target_sum=1e4)
            f.log1p(a)
    for kwargs in ({"n_top_genes": 80}, {} if flavor != "seurat_v3" else {"n_top_genes": 40}):
        got = slaf.pp.highly_variable_genes(
            lazy, flavor=flavor, batch_key="pair", inplace=False, **kwargs
        )
        want = sc.pp.highly_variable_genes(
            mem, flavor=flavor, batch_key="pair", inplace=False, **kwargs
        ).loc[mem.var_names]
        assert list(got.columns) == list(want.columns)
        agreement = np.mean(got["highly_variable"].to_numpy() == want["highly_variable"].to_numpy())
        assert agreement >= (0.99 if flavor == "seurat_v3" else 1.0)
        np.testing.assert_array_equal(
            got["highly_variable_nbatches"].to_numpy(), want["highly_variable_nbatches"].to_numpy()
        )
    slaf.pp.highly_variable_genes(lazy, flavor=flavor, batch_key="pair", n_top_genes=50)
    assert lazy.var["highly_variable"].sum() == 50
    assert "highly_variable_nbatches" in lazy.var.columns
    assert lazy.uns["hvg"] == {"flavor": flavor}


def test_empty_cells_and_unexpressed_genes(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n, g = 240, 90
    x = sp.random(n, g, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 30).astype(np.float32)
    x = x.tolil()
    x[[3, 50, 51], :] = 0  # empty cells
    x[:, [0, 7, 88]] = 0  # genes expressed nowhere
    x = x.tocsr()
    x.eliminate_zeros()
    names = {"obs": [f"c{i}" for i in range(n)], "var": [f"g{j}" for j in range(g)]}
    adata = ad.AnnData(
        X=x, obs=pd.DataFrame(index=names["obs"]), var=pd.DataFrame(index=names["var"])
    )
    adata.write_h5ad(tmp_path / "holes.h5ad")
    convert(tmp_path / "holes.h5ad", tmp_path / "holes.slaf", rows_per_fragment=1000)
    lazy = read_slaf(tmp_path / "holes.slaf")
    mem = _as_csr(adata)
    got_obs, got_var = slaf.pp.calculate_qc_metrics(lazy, percent_top=(5, 20))
    want_obs, want_var = sc.pp.calculate_qc_metrics(mem, percent_top=(5, 20))
    _same_columns(got_obs.fillna(-1), want_obs.fillna(-1), want_obs.columns)
    _same_columns(got_var, want_var, want_var.columns)
    with pytest.warns(UserWarning, match="zero counts"):
        slaf.pp.normalize_total(lazy)
    with pytest.warns(UserWarning, match="zero counts"):
        sc.pp.normalize_total(mem)
    slaf.pp.log1p(lazy)
    sc.pp.log1p(mem)
    np.testing.assert_allclose(lazy.X.toarray(), mem.X.toarray(), rtol=1e-5)
    for kwargs in ({"flavor": "seurat"}, {"flavor": "cell_ranger", "n_top_genes": 20}):
        got = slaf.pp.highly_variable_genes(lazy, inplace=False, **kwargs)
        want = sc.pp.highly_variable_genes(mem, inplace=False, **kwargs)
        np.testing.assert_array_equal(got["highly_variable"], want["highly_variable"])
    slaf.pp.pca(lazy, n_comps=8)
    sc.pp.pca(mem, n_comps=8, svd_solver="arpack")
    _pca_agrees(lazy, mem, 8, {})


def test_transformations_are_lazy_and_follow_views(generated_pair: tuple[Path, Path]) -> None:
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    mem = _as_csr(ad.read_h5ad(h5ad))
    before = lazy[:20]
    slaf.pp.normalize_total(lazy, target_sum=1e4)
    slaf.pp.log1p(lazy, base=2)
    sc.pp.normalize_total(mem, target_sum=1e4)
    sc.pp.log1p(mem, base=2)
    # a view taken before keeps the stored counts; views after see the transformed values
    np.testing.assert_array_equal(before.X.toarray(), _dense(read_slaf(path)[:20].X.compute()))
    picks = [5, 700, 2, 899]
    np.testing.assert_allclose(
        lazy[picks, 10:50].X.toarray(), mem[picks, 10:50].X.toarray(), rtol=1e-5
    )
    blocks = list(lazy.X.chunks())
    np.testing.assert_allclose(sp.vstack(blocks).toarray(), mem.X.toarray(), rtol=1e-5)
    np.testing.assert_allclose(lazy.X.mean(axis=0), mem.X.mean(axis=0), rtol=1e-5)
    assert len(lazy.transforms) == 2
    # filters narrow in place; obs columns and later pp results follow
    slaf.pp.filter_cells(lazy, min_counts=1)
    slaf.pp.filter_genes(lazy, min_cells=5)
    sc.pp.filter_cells(mem, min_counts=1)
    sc.pp.filter_genes(mem, min_cells=5)
    assert lazy.shape == mem.shape
    assert lazy[:3].obs["n_counts"].tolist() == pytest.approx(mem[:3].obs["n_counts"].tolist())
    # scale: dense blocks, zero-centred and clipped as scanpy
    scaled = lazy.copy()
    slaf.pp.scale(scaled, max_value=3)
    ref = mem.copy()
    sc.pp.scale(ref, max_value=3)
    got = scaled.X.compute()
    assert isinstance(got, np.ndarray) and got.dtype == ref.X.dtype
    np.testing.assert_allclose(got, ref.X, rtol=1e-5, atol=1e-6)
    _same_columns(scaled.var, ref.var, ["mean", "std"])
    assert "mean" not in lazy.var.columns  # the copy's scaling left the original alone
    uncentred = lazy.copy()
    slaf.pp.scale(uncentred, zero_center=False, max_value=4)
    ref = mem.copy()
    sc.pp.scale(ref, zero_center=False, max_value=4)
    np.testing.assert_allclose(_dense(uncentred.X.compute()), _dense(ref.X), rtol=1e-5)
    # PCA on scaled data, and its results in memory on the LazyAnnData
    slaf.pp.pca(scaled, n_comps=10)
    sc.pp.scale(mem_scaled := mem.copy(), max_value=3)
    sc.pp.pca(mem_scaled, n_comps=10, svd_solver="arpack")
    _pca_agrees(scaled, mem_scaled, 10, {})
    memory = scaled[:7].to_memory()
    assert memory.obsm["X_pca"].shape == (7, 10)
    assert "pca" in memory.uns and "X_pca" not in read_slaf(path).obsm


def test_pca_without_centring_and_key_added(generated_pair: tuple[Path, Path]) -> None:
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    mem = _as_csr(ad.read_h5ad(h5ad))
    for f, a in ((slaf.pp, lazy), (sc.pp, mem)):
        f.normalize_total(a)
        f.log1p(a)
    slaf.pp.pca(lazy, n_comps=5, zero_center=False, key_added="svd")
    sc.pp.pca(mem, n_comps=5, zero_center=False, key_added="svd")
    got, want = lazy.uns["svd"], mem.uns["svd"]
    assert got["params"] == want["params"]
    # scanpy's TruncatedSVD is randomized: agree to its accuracy
    np.testing.assert_allclose(got["variance_ratio"], want["variance_ratio"], atol=1e-3)
    corr = [abs(np.corrcoef(lazy.obsm["svd"][:, i], mem.obsm["svd"][:, i])[0, 1]) for i in range(5)]
    assert min(corr) >= 0.99
    assert lazy.varm["svd"].shape == (lazy.n_vars, 5)


def test_bad_input_names_the_problem(generated_pair: tuple[Path, Path]) -> None:
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    with pytest.raises(ValueError, match="unknown flavor 'nope'"):
        slaf.pp.highly_variable_genes(lazy, flavor="nope")
    with pytest.raises(KeyError, match="batch_key 'nope'"):
        slaf.pp.highly_variable_genes(lazy, batch_key="nope")
    with pytest.raises(ValueError, match="n_comps=500"):
        slaf.pp.pca(lazy, n_comps=500)
    with pytest.raises(ValueError, match="Only provide one"):
        slaf.pp.filter_cells(lazy, min_genes=3, min_counts=4)
    with pytest.raises(TypeError, match="takes a LazyAnnData"):
        slaf.pp.log1p(ad.read_h5ad(h5ad))
    with pytest.raises(KeyError, match="qc_vars: 'ribo'"):
        slaf.pp.calculate_qc_metrics(lazy, qc_vars=["ribo"])
    with pytest.raises(IndexError, match="percent_top 500 with 400 genes"):
        slaf.pp.calculate_qc_metrics(lazy)
    with pytest.raises(KeyError, match="layer 'nope'"):
        slaf.pp.calculate_qc_metrics(lazy, layer="nope", percent_top=None)
    with pytest.raises(NotImplementedError, match="X only"):
        slaf.pp.normalize_total(lazy, layer="counts")
    slaf.pp.normalize_total(lazy)
    slaf.pp.log1p(lazy)
    with pytest.warns(UserWarning, match="expects raw count data"):
        slaf.pp.highly_variable_genes(lazy, flavor="seurat_v3", n_top_genes=50, inplace=False)
    with pytest.warns(UserWarning, match="already log-transformed"):
        slaf.pp.log1p(lazy)


def test_import_paths() -> None:
    from slaf.integrations import pp as pp2
    from slaf.integrations.scanpy import pp

    assert pp is slaf.pp is pp2
    assert set(pp.__all__) >= {
        "calculate_qc_metrics",
        "filter_cells",
        "filter_genes",
        "normalize_total",
        "log1p",
        "highly_variable_genes",
        "scale",
        "pca",
    }


def test_normalize_total_options(generated_pair: tuple[Path, Path]) -> None:
    path, h5ad = generated_pair
    mem = _as_csr(ad.read_h5ad(h5ad))
    lazy = read_slaf(path)
    kwargs = {"exclude_highly_expressed": True, "max_fraction": 0.05, "key_added": "factor"}
    slaf.pp.normalize_total(lazy, **kwargs)
    sc.pp.normalize_total(mem, **kwargs)
    _same_columns(lazy.obs, mem.obs, ["factor"])
    np.testing.assert_allclose(lazy.X.toarray(), mem.X.toarray(), rtol=1e-5)
    got = slaf.pp.normalize_total(read_slaf(path), target_sum=100, inplace=False)
    want = sc.pp.normalize_total(_as_csr(ad.read_h5ad(h5ad)), target_sum=100, inplace=False)
    np.testing.assert_allclose(got["norm_factor"], want["norm_factor"], rtol=1e-6)
    np.testing.assert_allclose(got["X"].toarray(), want["X"].toarray(), rtol=1e-5)
    with pytest.raises(ValueError, match="max_fraction between 0 and 1"):
        slaf.pp.normalize_total(lazy, max_fraction=2)


def test_recipe_in_many_small_blocks(
    generated_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block boundaries change nothing: read chunks of ~2,000 values, passes of ≤ 500."""
    import slaf.integrations.anndata as lazy_module
    import slaf.pp._stream as stream

    monkeypatch.setattr(lazy_module, "_VALUES_PER_CHUNK", 2_000)
    monkeypatch.setattr(stream, "_PASS_VALUES", 500)
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    assert len(list(lazy.X.chunks())) > 20
    report = _recipe_agrees(lazy, _as_csr(ad.read_h5ad(h5ad)))
    assert report["pca_min_corr"] >= 0.999


def test_pca_by_subspace_iteration(
    generated_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many genes (here: the Gram limit lowered) or svd_solver="randomized": the streamed
    subspace iteration agrees with scanpy's arpack too."""
    pca_module = importlib.import_module("slaf.pp.pca")  # the module, not slaf.pp.pca()
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    mem = _as_csr(ad.read_h5ad(h5ad))
    for f, a in ((slaf.pp, lazy), (sc.pp, mem)):
        f.normalize_total(a)
        f.log1p(a)
    sc.pp.pca(mem, n_comps=20, svd_solver="arpack", mask_var=None)
    slaf.pp.pca(lazy, n_comps=20, svd_solver="randomized", mask_var=None)
    _pca_agrees(lazy, mem, 20, {})
    monkeypatch.setattr(pca_module, "_GRAM_MAX_GENES", 100)
    slaf.pp.pca(lazy, n_comps=20, mask_var=None, random_state=7)
    _pca_agrees(lazy, mem, 20, {})


def test_transformations_compose_in_any_order(generated_pair: tuple[Path, Path]) -> None:
    path, h5ad = generated_pair
    lazy = read_slaf(path)
    mem = _as_csr(ad.read_h5ad(h5ad))
    for f, a in ((slaf.pp, lazy), (sc.pp, mem)):
        f.normalize_total(a)
        f.log1p(a)
        f.scale(a, zero_center=False)
        f.normalize_total(a, target_sum=10)
    np.testing.assert_allclose(lazy.X.toarray(), _dense(mem.X), rtol=1e-5)
    dense = read_slaf(path)
    ref = _as_csr(ad.read_h5ad(h5ad))
    for f, a in ((slaf.pp, dense), (sc.pp, ref)):
        f.scale(a)  # dense from here on
        f.log1p(a)
    np.testing.assert_allclose(dense.X.compute(), ref.X, rtol=1e-5, equal_nan=True)
    empty = read_slaf(path)
    slaf.pp.filter_cells(empty, min_genes=10**6)
    assert empty.shape == (0, 400) and empty.X.compute().shape == (0, 400)
