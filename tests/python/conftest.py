"""Shared paths and the source data behind each slafdb fixture."""

from __future__ import annotations

import gzip
import os
from functools import cache
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SLAF_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "slafdb-0.5.2"
REAL = SHARED / "data" / "real"
#: The shared real data and slafdb fixtures are optional: without them, the tests that read them
#: skip with this reason and everything else runs.
HAVE_SHARED = FIXTURES.is_dir() and REAL.is_dir()
NO_SHARED = f"needs the shared test data: set SLAF_SHARED (nothing at {SHARED})"
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason=NO_SHARED)

#: fixture name -> source it was converted from (see shared/data/README.md)
SOURCES = {
    "perturb500_chunked.slaf": "cellxgene_small_perturbations.h5ad",
    "perturb500_inmemory.slaf": "cellxgene_small_perturbations.h5ad",
    "pbmc68k_reduced_inmemory.slaf": "pbmc68k_reduced.h5ad",
    "pbmc10x_v3_mtx_chunked.slaf": "scanpy-10x-v3/filtered_feature_bc_matrix",
    "mouse_merfish_chunked.slaf": "mouse_merfish_val.h5ad",
}


def _read_10x_mtx(folder: Path) -> ad.AnnData:
    """A 10x v3 MTX folder as scanpy's ``read_10x_mtx`` names it (gene symbols, made unique)."""
    with gzip.open(folder / "matrix.mtx.gz") as f:
        x = sp.csr_matrix(scipy.io.mmread(f).T.astype(np.float32))
    features = pd.read_csv(folder / "features.tsv.gz", sep="\t", header=None)
    barcodes = pd.read_csv(folder / "barcodes.tsv.gz", sep="\t", header=None)
    adata = ad.AnnData(
        x,
        obs=pd.DataFrame(index=barcodes[0].astype(str).to_numpy()),
        var=pd.DataFrame(
            {"gene_ids": features[0].to_numpy(), "feature_types": features[2].to_numpy()},
            index=features[1].astype(str).to_numpy(),
        ),
    )
    adata.var_names_make_unique()
    return adata


@cache
def source(fixture: str) -> ad.AnnData:
    """The AnnData a fixture was made from."""
    if not HAVE_SHARED:
        pytest.skip(NO_SHARED)
    path = REAL / SOURCES[fixture]
    if path.is_dir():
        return _read_10x_mtx(path)
    return ad.read_h5ad(path)


@pytest.fixture(params=sorted(SOURCES), ids=lambda name: name.removesuffix(".slaf"))
def fixture_name(request: pytest.FixtureRequest) -> str:
    if not HAVE_SHARED:
        pytest.skip(NO_SHARED)
    if not (FIXTURES / request.param).exists():
        pytest.fail(f"shared fixture missing: {FIXTURES / request.param}")
    return request.param


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 500 × 300 dataset, for tests that modify a copy."""
    import sys

    sys.path.insert(0, str(REPO / "benches"))
    from synthetic import generate

    out = tmp_path_factory.mktemp("synthetic") / "small.slaf"
    generate(out, n_cells=500, n_genes=300, nnz_per_cell=40, seed=7, rows_per_fragment=3001)
    return out


@pytest.fixture(scope="session")
def halves(tmp_path_factory: pytest.TempPathFactory) -> tuple[ad.AnnData, Path, Path]:
    """A varied AnnData (CSR counts, layers ``counts`` and ``half``, nullable and dotted obs
    columns, obsm) split into two h5ad files, for conversion and append tests."""
    rng = np.random.default_rng(11)
    n, g = 300, 40
    x = sp.random(n, g, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 70000).astype(np.float32)  # integers, some above 65535
    x.data[:5] = 0  # explicit zeros are not stored
    obs = pd.DataFrame(
        {
            "cell.type": pd.Categorical(rng.choice(["T", "B", None], n)),
            "count": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "flag": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "label": pd.array([None if i % 7 == 0 else f"c{i}" for i in range(n)], "string"),
            "score": rng.random(n),
        },
        index=[f"cell{i}" for i in range(n)],
    )
    obs.loc[obs.index[::5], "count"] = pd.NA
    obs.loc[obs.index[::6], "flag"] = pd.NA
    var = pd.DataFrame({"symbol": [f"S{j}" for j in range(g)]}, index=[f"G{j}" for j in range(g)])
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.layers["counts"] = x.copy()
    adata.layers["half"] = (x * 0.5).tocsr()
    adata.obsm["X_umap"] = rng.random((n, 2)).astype(np.float32)
    out = tmp_path_factory.mktemp("halves")
    full = out / "full.h5ad"
    adata.write_h5ad(full)
    a, b = out / "a.h5ad", out / "b.h5ad"
    adata[:120].copy().write_h5ad(a)
    adata[120:].copy().write_h5ad(b)
    return adata, a, b
