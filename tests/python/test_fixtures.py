"""Every slafdb 0.5.2 fixture (shared, or generated when the shared data is absent) reads back
exactly what anndata reads from its source file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp

from slaf import SLAFArray

from conftest import FIXTURES, from_mtx, needs_shared, source


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def test_x_ids_and_order(fixture_name: str) -> None:
    adata = source(fixture_name)
    data = SLAFArray(FIXTURES / fixture_name)
    assert data.shape == adata.shape
    assert data.obs["cell_id"].to_list() == adata.obs_names.tolist()
    assert data.var["gene_id"].to_list() == adata.var_names.tolist()
    x = data.get_submatrix(format="csr")
    assert x.shape == adata.shape
    assert x.has_sorted_indices
    np.testing.assert_array_equal(x.toarray(), _dense(adata.X).astype(x.dtype))


def _expected_column(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(str)
    return series.tolist()


@pytest.mark.parametrize("axis", ["obs", "var"])
def test_annotation_columns(fixture_name: str, axis: str) -> None:
    adata = source(fixture_name)
    frame: pl.DataFrame = getattr(SLAFArray(FIXTURES / fixture_name), axis)
    expected: pd.DataFrame = getattr(adata, axis)
    for name in expected.columns:
        stored = name.replace(".", "_")
        if stored not in frame.columns:
            # slafdb's MTX reader keeps only the gene names; nothing else to compare.
            assert from_mtx(fixture_name), f"{axis} column {name!r} missing"
            continue
        got = frame[stored].to_list()
        want = _expected_column(expected[name])
        if np.issubdtype(np.asarray(want).dtype, np.floating):
            np.testing.assert_allclose(
                np.asarray(got, dtype=float),
                np.asarray(want, dtype=float),
                rtol=1e-6,
                equal_nan=True,
                err_msg=f"{axis}.{name}",
            )
        else:
            assert got == want, f"{axis}.{name}"


def test_obsm_varm_obsp_uns(fixture_name: str) -> None:
    adata = source(fixture_name)
    data = SLAFArray(FIXTURES / fixture_name)
    config = data.config
    for key in config.get("obsm", {}).get("available", []):
        np.testing.assert_allclose(data.obsm[key], adata.obsm[key], rtol=1e-6)
    for key in config.get("varm", {}).get("available", []):
        np.testing.assert_allclose(data.varm[key], adata.varm[key], rtol=1e-6)
    for key in config.get("obsp", {}).get("available", []):
        got, want = data.obsp[key], sp.csr_matrix(adata.obsp[key])
        assert got.shape == want.shape
        want.eliminate_zeros()
        assert got.nnz == want.nnz, key
        np.testing.assert_allclose(got.toarray(), want.toarray(), rtol=1e-6, err_msg=key)
    assert set(data.obsm) == set(config.get("obsm", {}).get("available", []))
    if (FIXTURES / fixture_name / "uns.json").exists():
        assert set(data.uns) == set(adata.uns)
        for key, value in data.uns.items():
            if isinstance(value, list) and value and isinstance(value[0], str):
                assert value == list(adata.uns[key]), key
    else:
        assert data.uns == {}


@needs_shared
def test_pbmc68k_has_every_annotation() -> None:
    data = SLAFArray(FIXTURES / "pbmc68k_reduced_inmemory.slaf")
    assert sorted(data.obsm) == ["X_pca", "X_umap"]
    assert data.obsm["X_pca"].shape == (700, 50)
    assert list(data.varm) == ["PCs"]
    assert sorted(data.obsp) == ["connectivities", "distances"]
    assert data.uns["louvain"]["params"]["resolution"] == [1]


@needs_shared
def test_wrong_stored_start_index_is_not_trusted() -> None:
    # slafdb 0.5.2 stored offsets for this dataset that do not match its expression table.
    data = SLAFArray(FIXTURES / "perturb500_chunked.slaf")
    assert data._native.start_index_source() == "derived"
    good = SLAFArray(FIXTURES / "pbmc10x_v3_mtx_chunked.slaf")
    assert good._native.start_index_source() == "stored"
