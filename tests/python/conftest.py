"""Shared paths and the source data behind each slafdb fixture.

With the shared test data (``SLAF_SHARED``, default ``../shared``) the slafdb fixtures are the
shared ones, made from real files. Without it they are generated once per session by slafdb
0.5.2 from sources built in code (``slafdb_fixtures.py``), so the compatibility tests still run;
only the tests that read the real files, or expect a real dataset's own content, skip.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
import slafdb_fixtures

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SLAF_SHARED", REPO.parent / "shared"))
SHARED_FIXTURES = SHARED / "fixtures" / "slafdb-0.5.2"
REAL = SHARED / "data" / "real"
#: The shared real data and slafdb fixtures are optional: without them, the tests that read the
#: real files skip with this reason and everything else runs.
HAVE_SHARED = SHARED_FIXTURES.is_dir() and REAL.is_dir()
NO_SHARED = f"needs the shared test data: set SLAF_SHARED (nothing at {SHARED})"
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason=NO_SHARED)
NO_SLAFDB = (
    f"needs slafdb 0.5.2 to write the fixtures ({slafdb_fixtures.SLAFDB_PYTHON} is missing: "
    "bash .ci/setup), or the shared test data (SLAF_SHARED)"
)

# Known at import (collection needs the names and paths); filled on first use, removed at exit.
GENERATED = Path(tempfile.gettempdir()) / f"slaf-slafdb-fixtures-{os.getpid()}"
#: The folder of slafdb-written datasets the tests read: shared, or generated in this session.
FIXTURES = SHARED_FIXTURES if HAVE_SHARED else GENERATED

#: fixture name -> source it was converted from (see shared/data/README.md)
SOURCES = {
    "perturb500_chunked.slaf": "cellxgene_small_perturbations.h5ad",
    "perturb500_inmemory.slaf": "cellxgene_small_perturbations.h5ad",
    "pbmc68k_reduced_inmemory.slaf": "pbmc68k_reduced.h5ad",
    "pbmc10x_v3_mtx_chunked.slaf": "scanpy-10x-v3/filtered_feature_bc_matrix",
    "mouse_merfish_chunked.slaf": "mouse_merfish_val.h5ad",
}
#: The fixtures ``fixture_name`` runs over.
FIXTURE_NAMES = sorted(SOURCES) if HAVE_SHARED else sorted(slafdb_fixtures.FIXTURES)


def stand_in(name: str) -> str:
    """The fixture to use for the shared fixture ``name``: itself with the shared data, else
    the generated one of the same shape and kind of content (``slafdb_fixtures.STAND_INS``)."""
    return name if HAVE_SHARED else slafdb_fixtures.STAND_INS[name]


def from_mtx(name: str) -> bool:
    """Whether fixture ``name`` was converted from a 10x MTX folder."""
    if name in slafdb_fixtures.FIXTURES:
        return slafdb_fixtures.FIXTURES[name].is_mtx
    return (REAL / SOURCES[name]).suffix != ".h5ad"


_generation: dict[str, float | Exception] = {}


def generated() -> Path:
    """The generated fixtures, written on the first call of the session (skips the calling
    test when slafdb 0.5.2 is not installed)."""
    if not slafdb_fixtures.SLAFDB_PYTHON.exists():
        pytest.skip(NO_SLAFDB)
    if "done" not in _generation:
        try:
            _generation["done"] = slafdb_fixtures.generate(GENERATED)
        except Exception as error:  # every later test reports it too, without retrying
            _generation["done"] = error
    outcome = _generation["done"]
    if isinstance(outcome, Exception):
        raise RuntimeError(f"generating the slafdb fixtures failed: {outcome}") from outcome
    return GENERATED


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(GENERATED, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    if HAVE_SHARED:
        return f"slafdb fixtures: {FIXTURES}"
    return f"slafdb fixtures: generated at test time in {GENERATED} ({NO_SHARED})"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    outcome = _generation.get("done")
    if isinstance(outcome, float):
        terminalreporter.write_line(f"slafdb fixtures generated in {outcome:.1f} s")


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
    """The AnnData a fixture was made from (shared or generated), as anndata reads it."""
    if fixture in slafdb_fixtures.FIXTURES:
        path = generated() / "sources" / slafdb_fixtures.FIXTURES[fixture].source
    elif not HAVE_SHARED:
        pytest.skip(NO_SHARED)
    else:
        path = REAL / SOURCES[fixture]
    if path.is_dir():
        return _read_10x_mtx(path)
    return ad.read_h5ad(path)


@pytest.fixture(scope="session")
def slafdb_fixtures_dir() -> Path:
    """``FIXTURES``, generated first when the shared data is absent (see ``generated``)."""
    return FIXTURES if HAVE_SHARED else generated()


#: For tests that read ``FIXTURES / stand_in(...)`` directly rather than through
#: ``fixture_name``: the fixtures exist (or the test skips) before they run.
needs_fixtures = pytest.mark.usefixtures("slafdb_fixtures_dir")


@pytest.fixture(params=FIXTURE_NAMES, ids=lambda name: name.removesuffix(".slaf"))
def fixture_name(request: pytest.FixtureRequest, slafdb_fixtures_dir: Path) -> str:
    """Each slafdb-written dataset in turn (shared, or generated)."""
    if not (slafdb_fixtures_dir / request.param).exists():
        pytest.fail(f"slafdb fixture missing: {slafdb_fixtures_dir / request.param}")
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
