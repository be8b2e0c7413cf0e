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
    path = REAL / SOURCES[fixture]
    if path.is_dir():
        return _read_10x_mtx(path)
    return ad.read_h5ad(path)


@pytest.fixture(params=sorted(SOURCES), ids=lambda name: name.removesuffix(".slaf"))
def fixture_name(request: pytest.FixtureRequest) -> str:
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
