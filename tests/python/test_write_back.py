"""Changes written back through LazyAnnData, as slafdb does: obs/var columns, obsm/varm,
layers; there on reopen, protected when they came from the conversion, refused on views,
in memory only on copies and for slaf.pp's results."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import slaf
from slaf import SLAFArray, convert
from slaf.integrations import read_slaf

REPO = Path(__file__).resolve().parents[2]
SLAFDB_PYTHON = REPO / ".venv-slafdb" / "bin" / "python"


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[ad.AnnData, Path]:
    """A 300 × 80 dataset with a layer, obsm/varm and a categorical obs column."""
    rng = np.random.default_rng(11)
    n, g = 300, 80
    x = sp.random(n, g, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 10).astype(np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(
            {"cell_type": pd.Categorical(rng.choice(["T", "B", "NK"], n))},
            index=[f"c{i}" for i in range(n)],
        ),
        var=pd.DataFrame(
            {"symbol": [f"S{j}" for j in range(g)]}, index=[f"g{j}" for j in range(g)]
        ),
    )
    adata.layers["half"] = (x * 0.5).tocsr()
    adata.obsm["X_umap"] = rng.random((n, 2)).astype(np.float32)
    adata.varm["PCs"] = rng.random((g, 3)).astype(np.float32)
    adata.write_h5ad(tmp_path / "src.h5ad")
    path = tmp_path / "d.slaf"
    convert(tmp_path / "src.h5ad", path)
    return adata, path


def _config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def test_obs_and_var_columns_persist_and_can_be_removed(dataset) -> None:
    adata, path = dataset
    lazy = read_slaf(path)
    qc = np.arange(lazy.n_obs, dtype=np.float64) / 7
    lazy.obs["qc"] = qc
    lazy.obs["group"] = pd.Categorical(np.where(np.arange(lazy.n_obs) % 2 == 0, "even", "odd"))
    lazy.var["mt"] = lazy.var_names.str.startswith("g1")
    assert "qc" in lazy.obs.columns  # this object sees it at once

    again = read_slaf(path)
    np.testing.assert_array_equal(again.obs["qc"].to_numpy(), qc)
    assert again.obs["group"].astype(str).tolist()[:3] == ["even", "odd", "even"]
    np.testing.assert_array_equal(again.var["mt"].to_numpy(), adata.var_names.str.startswith("g1"))
    # SQL sees the new column too, and the original columns are untouched.
    counted = again.slaf.query("SELECT COUNT(*) AS n FROM cells WHERE qc > 10").item()
    assert counted == int((qc > 10).sum())
    assert (
        again.obs["cell_type"].astype(str).tolist() == adata.obs["cell_type"].astype(str).tolist()
    )
    config = _config(path)
    assert config["obs"]["mutable"] == ["group", "qc"]
    assert config["var"]["mutable"] == ["mt"]

    # Replacing an added column, then removing it.
    lazy.obs["qc"] = qc * 2
    np.testing.assert_array_equal(read_slaf(path).obs["qc"].to_numpy(), qc * 2)
    del lazy.obs["qc"]
    assert "qc" not in lazy.obs.columns
    assert "qc" not in read_slaf(path).obs.columns
    assert _config(path)["obs"]["mutable"] == ["group"]


def test_obsm_varm_and_layers_persist(dataset) -> None:
    adata, path = dataset
    lazy = read_slaf(path)
    emb = np.random.default_rng(0).random((lazy.n_obs, 4)).astype(np.float32)
    lazy.obsm["X_new"] = emb
    lazy.varm["loadings"] = np.ones((lazy.n_vars, 2))
    # A layer whose entries differ from the existing layer's (some new, some dropped).
    extra = sp.random(
        lazy.n_obs, lazy.n_vars, density=0.1, format="csr", random_state=1, dtype=np.float32
    )
    lazy.layers["extra"] = extra
    lazy.layers["double"] = lazy.X  # a lazy matrix, computed when written

    again = read_slaf(path)
    np.testing.assert_array_equal(again.obsm["X_new"], emb)
    np.testing.assert_array_equal(again.varm["loadings"], np.ones((lazy.n_vars, 2)))
    np.testing.assert_array_equal(again.obsm["X_umap"], adata.obsm["X_umap"])
    assert sorted(again.layers) == ["double", "extra", "half"]
    np.testing.assert_allclose(again.layers["extra"].toarray(), extra.toarray(), rtol=1e-6)
    np.testing.assert_array_equal(again.layers["double"].toarray(), adata.X.toarray())
    np.testing.assert_array_equal(again.layers["half"].toarray(), adata.layers["half"].toarray())
    np.testing.assert_array_equal(again[5:40].layers["extra"].toarray(), extra[5:40].toarray())
    assert _config(path)["obsm"]["dimensions"]["X_new"] == 4

    del lazy.layers["extra"]
    del lazy.obsm["X_new"]
    again = read_slaf(path)
    assert sorted(again.layers) == ["double", "half"]
    assert "X_new" not in again.obsm
    np.testing.assert_array_equal(again.layers["double"].toarray(), adata.X.toarray())


def test_converted_keys_are_protected(dataset) -> None:
    _, path = dataset
    lazy = read_slaf(path)
    with pytest.raises(ValueError, match="protected"):
        lazy.obs["cell_type"] = "x"
    with pytest.raises(ValueError, match="protected"):
        del lazy.var["symbol"]
    with pytest.raises(ValueError, match="protected"):
        lazy.layers["half"] = lazy.X
    with pytest.raises(ValueError, match="protected"):
        del lazy.obsm["X_umap"]
    with pytest.raises(ValueError, match="keeps for itself"):
        lazy.obs["cell_integer_id"] = 0
    with pytest.raises(ValueError, match="obsm key"):
        lazy.obs["X_umap"] = 1
    with pytest.raises(ValueError, match="not a valid name"):
        lazy.obs["bad name"] = 1
    with pytest.raises(ValueError, match="Length of values"):
        lazy.obs["short"] = np.zeros(3)
    with pytest.raises(ValueError, match="needs 300 rows"):
        lazy.obsm["X_bad"] = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"needs shape \(300, 80\)"):
        lazy.layers["bad"] = sp.csr_matrix((3, 80))
    with pytest.raises(KeyError, match='no obs "nope"'):
        del lazy.obs["nope"]
    # Nothing above changed the dataset.
    again = read_slaf(path)
    assert list(again.obs.columns) == ["cell_type"]
    assert "obs" not in _config(path)


def test_views_refuse_copies_keep_in_memory(dataset) -> None:
    _, path = dataset
    lazy = read_slaf(path)
    view = lazy[:10]
    with pytest.raises(ValueError, match="view or a copy"):
        view.obs["x"] = 1
    with pytest.raises(ValueError, match="view or a copy"):
        view.layers["x"] = sp.csr_matrix(view.shape)
    with pytest.raises(ValueError, match="view or a copy"):
        view.obsm["x"] = np.zeros((10, 2))
    copy = lazy.copy()
    copy.obs["x"] = 1
    copy.obsm["x"] = np.zeros((lazy.n_obs, 2))
    assert "x" in copy.obs.columns and "x" in copy.obsm
    assert "x" not in read_slaf(path).obs.columns and "x" not in read_slaf(path).obsm
    # A filter narrows the object in place: it is a selection now, so nothing is written.
    slaf.pp.filter_cells(lazy, min_genes=20)
    assert lazy.is_view
    with pytest.raises(ValueError, match="selects"):
        lazy.obs["y"] = 1


def test_pp_results_stay_in_memory(dataset) -> None:
    _, path = dataset
    lazy = read_slaf(path)
    lazy.var["mt"] = lazy.var_names.str.startswith("g1")  # the user's column: written
    slaf.pp.calculate_qc_metrics(lazy, qc_vars=["mt"], percent_top=[10], inplace=True)
    slaf.pp.normalize_total(lazy, target_sum=1e4, key_added="norm")
    slaf.pp.pca(lazy, n_comps=5)
    assert "total_counts" in lazy.obs.columns and "X_pca" in lazy.obsm
    again = read_slaf(path)
    assert list(again.var.columns) == ["symbol", "mt"]
    assert list(again.obs.columns) == ["cell_type"]
    assert "X_pca" not in again.obsm
    # After pp, the user's own assignment of the embedding is written.
    lazy.obsm["X_pca"] = lazy.obsm["X_pca"]
    assert read_slaf(path).obsm["X_pca"].shape == (lazy.n_obs, 5)


def test_open_readers_keep_their_version(dataset) -> None:
    _, path = dataset
    before = SLAFArray(path)
    lazy = read_slaf(path)
    lazy.obs["qc"] = 1.0
    assert "qc" not in before.obs.columns  # opened before the commit: the version it opened
    assert "qc" in SLAFArray(path).obs.columns


def test_queries_see_commits_made_elsewhere(dataset) -> None:
    _, path = dataset
    data = SLAFArray(path)
    assert "qc" not in data.query("SELECT * FROM cells LIMIT 1").columns
    read_slaf(path).obs["qc"] = 3.0  # another object commits a column
    assert data.query('SELECT SUM("qc") AS s FROM cells')["s"][0] == 3.0 * 300


def test_remote_datasets_are_not_written(dataset) -> None:
    _, path = dataset
    lazy = read_slaf(f"file://{path}")
    lazy.obs["qc"] = 2.0  # file:// is local
    assert "qc" in read_slaf(path).obs.columns


def test_changed_dataset_opens_in_slafdb(dataset, tmp_path: Path) -> None:
    if not SLAFDB_PYTHON.exists():
        missing = f"slafdb 0.5.2 is not installed ({SLAFDB_PYTHON} is missing; bash .ci/setup)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    _, path = dataset
    lazy = read_slaf(path)
    lazy.obs["qc"] = np.arange(lazy.n_obs, dtype=np.float32)
    lazy.layers["extra"] = lazy.X
    lazy.obsm["X_new"] = np.ones((lazy.n_obs, 3), dtype=np.float32)
    script = """
import sys
from slaf import SLAFArray
from slaf.integrations import read_slaf
a = read_slaf(sys.argv[1])
assert "qc" in a.obs.columns, a.obs.columns
assert float(a.obs["qc"].iloc[7]) == 7.0
assert "extra" in a.layers.keys(), a.layers.keys()
assert a.obsm["X_new"].shape == (300, 3)
# slafdb 0.5.2's background metadata thread can abort the interpreter at shutdown (on any
# dataset): leave before it does.
import os
os._exit(0)
"""
    done = subprocess.run(
        [str(SLAFDB_PYTHON), "-c", script, str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
