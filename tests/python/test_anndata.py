"""read_slaf / LazyAnnData against anndata's own slicing of the same data, slafdb's front-page
example, and slafdb's import paths."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp

import slaf
from slaf import SLAFArray, convert
from slaf.integrations import LazyAnnData, LazyExpressionMatrix, read_slaf

from conftest import FIXTURES, REAL, needs_shared, source


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _labelled(adata: ad.AnnData, seed: int = 3) -> ad.AnnData:
    """``adata`` with the obs columns slafdb's front-page examples use."""
    rng = np.random.default_rng(seed)
    n = adata.n_obs
    adata = adata.copy()
    adata.obs["cell_type"] = pd.Categorical(
        rng.choice(["T cells", "B cells", "CD8 Naive", "NK"], n)
    )
    adata.obs["donor"] = pd.Categorical(rng.choice(["Donor10", "Donor2", "Donor3"], n))
    adata.obs["batch"] = pd.Categorical(rng.choice(["batch1", "batch2"], n))
    adata.obs["total_counts"] = np.asarray(adata.X.sum(axis=1)).ravel()
    return adata


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[ad.AnnData, Path]:
    """A 400 × 120 AnnData with counts, a layer, obsm/varm/obsp and labelled obs, converted."""
    rng = np.random.default_rng(5)
    n, g = 400, 120
    x = sp.random(n, g, density=0.15, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 20).astype(np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(index=[f"cell{i}" for i in range(n)]),
        var=pd.DataFrame(
            {"symbol": [f"S{j}" for j in range(g)], "hv": rng.random(g) < 0.3},
            index=[f"G{j}" for j in range(g)],
        ),
    )
    adata.layers["half"] = (x * 0.5).tocsr()
    adata.obsm["X_pca"] = rng.random((n, 5)).astype(np.float32)
    adata.varm["PCs"] = rng.random((g, 5)).astype(np.float32)
    adata.obsp["distances"] = sp.random(n, n, density=0.02, format="csr", random_state=rng)
    adata.uns["note"] = {"made_by": "test"}
    adata = _labelled(adata)
    folder = tmp_path_factory.mktemp("anndata")
    adata.write_h5ad(folder / "gen.h5ad")
    convert(folder / "gen.h5ad", folder / "gen.slaf")
    return adata, folder / "gen.slaf"


def _selectors(adata: ad.AnnData) -> list:
    n, g = adata.shape
    rng = np.random.default_rng(0)
    mask = rng.random(n) < 0.3
    gmask = rng.random(g) < 0.5
    return [
        slice(None),
        5,
        -1,
        slice(3, 40),
        slice(2, n, 7),
        slice(None, None, -3),
        [7, 2, 2, n - 1],
        np.array([1, 0, 5]),
        list(adata.obs_names[[4, 1]]),
        adata.obs_names[10],
        mask,
        pd.Series(mask, index=adata.obs_names),
        pl.Series(mask),
        (slice(1, 30), gmask),
        (mask, [3, 0]),
        (slice(None), list(adata.var_names[[5, 2]])),
        (..., slice(0, g, 2)),
    ]


def _check_same(lazy: LazyAnnData, want: ad.AnnData) -> None:
    assert lazy.shape == want.shape
    assert list(lazy.obs_names) == list(want.obs_names)
    assert list(lazy.var_names) == list(want.var_names)
    got = lazy.X.compute()
    assert sp.isspmatrix_csr(got)
    np.testing.assert_allclose(got.toarray(), _dense(want.X), rtol=1e-6)


def test_front_page_examples_as_written(generated: tuple[ad.AnnData, Path]) -> None:
    adata_ref, path = generated
    # slafdb's README, unchanged but for the path.
    slaf_array = SLAFArray(str(path))
    results = slaf_array.query("""
        SELECT cell_type, AVG(total_counts) AS avg_counts
        FROM cells
        WHERE batch = "batch1"
          AND cell_type IN ("T cells", "B cells")
        GROUP BY cell_type
        ORDER BY avg_counts DESC
    """)
    adata = read_slaf(str(path))
    subset = adata[(adata.obs.cell_type == "CD8 Naive") & (adata.obs.donor == "Donor10"), :]
    expression = subset[:10, :].X.compute()

    obs = adata_ref.obs
    picked = obs[(obs.batch == "batch1") & obs.cell_type.isin(["T cells", "B cells"])]
    want = (
        picked.groupby("cell_type", observed=True)["total_counts"]
        .mean()
        .sort_values(ascending=False)
    )
    assert results["cell_type"].to_list() == list(want.index)
    np.testing.assert_allclose(results["avg_counts"].to_numpy(), want.to_numpy(), rtol=1e-6)
    ref = adata_ref[(obs.cell_type == "CD8 Naive") & (obs.donor == "Donor10"), :][:10, :]
    assert subset.n_obs > 10
    np.testing.assert_array_equal(expression.toarray(), _dense(ref.X))


@needs_shared
def test_front_page_examples_on_real_data(tmp_path: Path) -> None:
    real = _labelled(ad.read_h5ad(REAL / "pbmc68k_reduced.h5ad"))
    real.write_h5ad(tmp_path / "pbmc.h5ad")
    convert(tmp_path / "pbmc.h5ad", tmp_path / "pbmc.slaf")
    adata = read_slaf(tmp_path / "pbmc.slaf")
    subset = adata[(adata.obs.cell_type == "CD8 Naive") & (adata.obs.donor == "Donor10"), :]
    expression = subset[:10, :].X.compute()
    obs = real.obs
    ref = real[(obs.cell_type == "CD8 Naive") & (obs.donor == "Donor10"), :][:10, :]
    np.testing.assert_allclose(expression.toarray(), _dense(ref.X), rtol=1e-6)
    result = SLAFArray(tmp_path / "pbmc.slaf").query(
        'SELECT COUNT(*) AS n FROM cells WHERE batch = "batch1" AND donor = "Donor10"'
    )
    assert result["n"][0] == int(((obs.batch == "batch1") & (obs.donor == "Donor10")).sum())


def test_every_selector_and_chain(generated: tuple[ad.AnnData, Path]) -> None:
    adata, path = generated
    lazy = read_slaf(path)
    for sel in _selectors(adata):
        key = sel if isinstance(sel, tuple) else (sel,)
        want_key = tuple(
            k.to_numpy() if isinstance(k, pl.Series) else k for k in key
        )  # anndata does not take polars
        _check_same(lazy[key if len(key) > 1 else key[0]], adata[want_key])
    # Chains: adata[a][:, b], adata[a][b], three deep.
    _check_same(lazy[10:200][:, [4, 1]], adata[10:200][:, [4, 1]])
    _check_same(lazy[10:200][::3], adata[10:200][::3])
    _check_same(
        lazy[lazy.obs.batch == "batch1"][5:50][:, 7:9],
        adata[adata.obs.batch == "batch1"][5:50][:, 7:9],
    )
    _check_same(lazy[["cell9", "cell3"]][1], adata[["cell9", "cell3"]][1])


def test_views_read_nothing_until_asked(generated: tuple[ad.AnnData, Path]) -> None:
    _, path = generated
    lazy = read_slaf(path)
    view = lazy[3:9, 2:5]
    assert view.is_view and not lazy.is_view
    assert isinstance(view.X, LazyExpressionMatrix)
    assert "not read" in repr(view.X)
    assert view.X.shape == (6, 3) and len(view) == 6


def test_obs_var_and_the_rest(generated: tuple[ad.AnnData, Path]) -> None:
    adata, path = generated
    lazy = read_slaf(path)
    for column in ["cell_type", "donor", "batch"]:
        assert isinstance(lazy.obs[column].dtype, pd.CategoricalDtype)
        assert lazy.obs[column].astype(str).tolist() == adata.obs[column].astype(str).tolist()
    np.testing.assert_allclose(lazy.obs["total_counts"], adata.obs["total_counts"])
    assert lazy.var["symbol"].tolist() == adata.var["symbol"].tolist()
    assert lazy.var["hv"].tolist() == adata.var["hv"].tolist()
    view = lazy[[5, 1, 9], [3, 4]]
    np.testing.assert_array_equal(view.obsm["X_pca"], adata.obsm["X_pca"][[5, 1, 9]])
    np.testing.assert_array_equal(view.varm["PCs"], adata.varm["PCs"][[3, 4]])
    np.testing.assert_allclose(
        view.obsp["distances"].toarray(),
        adata.obsp["distances"][[5, 1, 9]][:, [5, 1, 9]].toarray(),
    )
    np.testing.assert_array_equal(
        view.layers["half"].compute().toarray(),
        adata.layers["half"][[5, 1, 9]][:, [3, 4]].toarray(),
    )
    assert lazy.uns["note"] == {"made_by": "test"}
    assert "cell_type" in repr(lazy)


def test_reductions_match_numpy(generated: tuple[ad.AnnData, Path]) -> None:
    adata, path = generated
    lazy = read_slaf(path)
    for view, want in ((lazy, adata), (lazy[50:300:2, 10:90], adata[50:300:2, 10:90])):
        dense = _dense(want.X).astype(np.float64)
        for axis in (None, 0, 1):
            for name in ("sum", "mean", "var", "std"):
                got = getattr(view.X, name)(axis=axis)
                expect = getattr(dense, name)(axis=axis, keepdims=axis is not None)
                np.testing.assert_allclose(got, expect, rtol=1e-9, err_msg=f"{name} axis={axis}")
        np.testing.assert_allclose(
            view.X.var(axis=0, ddof=1), dense.var(axis=0, ddof=1, keepdims=True), rtol=1e-9
        )
        # Same shapes as scipy's reductions of the in-memory matrix.
        assert view.X.sum(axis=0).shape == sp.csr_matrix(dense).sum(axis=0).shape


def test_streamed_reductions_use_chunks(
    generated: tuple[ad.AnnData, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import slaf.integrations.anndata as module

    adata, path = generated
    monkeypatch.setattr(module, "_VALUES_PER_CHUNK", 500)  # ~27 cells per chunk
    lazy = read_slaf(path)
    blocks = list(lazy.X.chunks())
    assert len(blocks) > 10
    assert max(b.shape[0] for b in blocks) < adata.n_obs
    np.testing.assert_allclose(
        lazy.X.mean(axis=0), _dense(adata.X).astype(np.float64).mean(axis=0, keepdims=True)
    )


def test_to_memory_and_write_h5ad(generated: tuple[ad.AnnData, Path], tmp_path: Path) -> None:
    adata, path = generated
    lazy = read_slaf(path)
    rows = lazy.obs.donor == "Donor2"
    got = lazy[rows, 10:60].to_memory()
    want = adata[rows.to_numpy(), 10:60]
    assert isinstance(got, ad.AnnData)
    np.testing.assert_array_equal(_dense(got.X), _dense(want.X))
    np.testing.assert_array_equal(_dense(got.layers["half"]), _dense(want.layers["half"]))
    np.testing.assert_array_equal(got.obsm["X_pca"], want.obsm["X_pca"])
    np.testing.assert_array_equal(got.varm["PCs"], want.varm["PCs"])
    np.testing.assert_allclose(
        _dense(got.obsp["distances"]), _dense(want.obsp["distances"]), rtol=1e-6
    )
    assert got.uns["note"] == {"made_by": "test"}
    pd.testing.assert_index_equal(got.obs_names, want.obs_names)
    got.obs_names_make_unique()  # a real AnnData: its own methods work
    lazy[:20].write_h5ad(tmp_path / "part.h5ad")
    back = ad.read_h5ad(tmp_path / "part.h5ad")
    np.testing.assert_array_equal(_dense(back.X), _dense(adata[:20].X))
    assert (
        back.obs["cell_type"].astype(str).tolist()
        == adata.obs["cell_type"][:20].astype(str).tolist()
    )
    copy = lazy[:5].copy()
    copy.obs["extra"] = 1
    assert "extra" not in lazy[:5].obs.columns


def test_fixtures_slice_like_anndata(fixture_name: str) -> None:
    adata = source(fixture_name)
    lazy = read_slaf(FIXTURES / fixture_name)
    for sel in _selectors(adata):
        key = sel if isinstance(sel, tuple) else (sel,)
        want_key = tuple(k.to_numpy() if isinstance(k, pl.Series) else k for k in key)
        _check_same(lazy[key if len(key) > 1 else key[0]], adata[want_key])
    rows = np.arange(0, adata.n_obs, 3)
    got = lazy[rows, ::2].to_memory()
    want = adata[rows, ::2]
    # (scipy cannot index some of these sources' views by rows and a stepped slice at once)
    np.testing.assert_allclose(_dense(got.X), _dense(adata.X)[rows][:, ::2], rtol=1e-6)
    for key in want.obsm:
        np.testing.assert_allclose(got.obsm[key], want.obsm[key], rtol=1e-6)
    for key in want.obsp:
        np.testing.assert_allclose(_dense(got.obsp[key]), _dense(want.obsp[key]), rtol=1e-6)
    for column in want.obs.columns:
        stored = column.replace(".", "_")
        w = want.obs[column]
        g = got.obs[stored]
        if isinstance(w.dtype, pd.CategoricalDtype) or w.dtype == object:
            assert g.astype(str).tolist() == w.astype(str).tolist(), column
        else:
            np.testing.assert_allclose(g.to_numpy(float), w.to_numpy(float), rtol=1e-6)


def test_bad_selectors_name_the_problem(generated: tuple[ad.AnnData, Path]) -> None:
    adata, path = generated
    lazy = read_slaf(path)
    n = adata.n_obs
    with pytest.raises(IndexError, match=f"cell index {n} is out of range"):
        lazy[n]
    with pytest.raises(IndexError, match=f"cell index {n + 5} is out of range"):
        lazy[[0, n + 5]]
    with pytest.raises(IndexError, match="gene index -121"):
        lazy[:, -121]
    with pytest.raises(IndexError, match="mask has length 3"):
        lazy[np.array([True, False, True])]
    with pytest.raises(KeyError, match="nope"):
        lazy[["cell1", "nope"]]
    with pytest.raises(KeyError, match="G999"):
        lazy[:, "G999"]
    with pytest.raises(TypeError, match="mixes kinds"):
        lazy[[0, "cell3"]]
    with pytest.raises(TypeError, match="float64"):
        lazy[np.array([0.5, 1.5])]
    with pytest.raises(TypeError, match="single boolean"):
        lazy[True]
    with pytest.raises(IndexError, match="at most two"):
        lazy[1, 2, 3]
    with pytest.raises(KeyError, match="no obsm key 'X_umap'"):
        lazy.obsm["X_umap"]
    with pytest.raises(ValueError, match="axis"):
        lazy.X.sum(axis=2)
    with pytest.raises(ValueError, match=f"needs {n} rows"):
        lazy.obsm["X_new"] = np.zeros((n + 1, 2))
    with pytest.raises(ValueError, match=r'obsm key "X_pca" .* is protected'):
        del lazy.obsm["X_pca"]
    with pytest.raises(KeyError, match="not_a_column"):
        lazy.obs["not_a_column"]


def test_slafdb_import_paths_and_members(
    generated: tuple[ad.AnnData, Path], tmp_path: Path
) -> None:
    adata, path = generated
    from slaf.core.slaf import SLAFArray as CoreArray
    from slaf.data import SLAFConverter
    from slaf.data.converter import SLAFConverter as Converter2
    from slaf.integrations.anndata import LazyAnnData as Lazy2
    from slaf.integrations.anndata import read_slaf as read2

    assert CoreArray is SLAFArray and Converter2 is SLAFConverter and Lazy2 is LazyAnnData
    assert read2 is read_slaf is slaf.read_slaf
    from slaf.integrations.scanpy import pp

    assert pp is slaf.pp and pp.normalize_total is slaf.pp.normalize_total
    from slaf.ml import SLAFDataLoader

    assert importlib.import_module("slaf.ml.dataloaders").SLAFDataLoader is SLAFDataLoader

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = SLAFArray(str(path), load_metadata=False)
        data.wait_for_metadata()
    assert any("load_metadata" in str(w.message) for w in caught)
    assert data.is_metadata_ready()
    long = data.get_submatrix(slice(0, 3))
    assert long.columns == ["cell_id", "gene_id", "value"]
    x = _dense(adata.X[:3])
    assert long.height == int((x != 0).sum())
    rows = {(c, g): v for c, g, v in long.iter_rows()}
    for i, j in zip(*np.nonzero(x), strict=True):
        assert rows[(adata.obs_names[i], adata.var_names[j])] == x[i, j]
    layer = data.get_submatrix([1], table_name="layers", layer_name="half", format="csr")
    np.testing.assert_array_equal(layer.toarray(), _dense(adata.layers["half"][[1]]))
    np.testing.assert_array_equal(data.layers["half"].toarray(), _dense(adata.layers["half"]))

    with pytest.warns(UserWarning, match="use_integer_keys"):
        converter = SLAFConverter(chunk_size=100, use_integer_keys=True)
    out = converter.convert_anndata(adata[:50].copy(), str(tmp_path / "small.slaf"))
    np.testing.assert_array_equal(
        SLAFArray(out).get_submatrix(format="csr").toarray(), _dense(adata.X[:50])
    )
    with pytest.raises(TypeError, match="not_an_option"):
        SLAFConverter(not_an_option=1)
