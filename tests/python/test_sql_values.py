"""Values from the DuckDB extension match the Python view (``SLAFArray``) and the source AnnData
of every shared fixture."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
import scipy.sparse as sp

from slaf import SLAFArray

from conftest import FIXTURES, REPO, source

REPOSITORY = REPO / "build" / "repository"


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """Python duckdb with ``slaf`` installed from the local repository and loaded."""
    if not (REPOSITORY / "v2.0.0" / "linux_amd64" / "slaf.duckdb_extension").exists():
        pytest.fail(f"{REPOSITORY} is missing: run .ci/build-extension first")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"SET extension_directory = '{tmp_path_factory.mktemp('ext')}'")
    con.execute(f"INSTALL slaf FROM '{REPOSITORY}'")
    con.execute("LOAD slaf")
    return con


def coo_to_csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple) -> sp.csr_matrix:
    """Long rows as a CSR matrix (duplicates would be summed; there are none)."""
    return sp.csr_matrix((vals.astype(np.float64), (rows, cols)), shape=shape)


def test_obs_matches_python_view(con: duckdb.DuckDBPyConnection, fixture_name: str) -> None:
    path = FIXTURES / fixture_name
    obs = SLAFArray(path).obs
    got = con.sql(f"SELECT * FROM slaf_scan('{path}', 'cells') ORDER BY cell_integer_id").pl()
    assert got["cell_id"].to_list() == obs["cell_id"].to_list()
    for column in obs.columns:
        assert got[column].to_list() == obs[column].to_list(), column


def test_expression_matches_anndata(con: duckdb.DuckDBPyConnection, fixture_name: str) -> None:
    path = FIXTURES / fixture_name
    x = sp.csr_matrix(source(fixture_name).X)
    n_cells, n_genes = x.shape
    rows = con.execute(
        f"SELECT cell_integer_id, gene_integer_id, value FROM slaf_scan('{path}', 'expression')"
    ).fetchnumpy()
    got = coo_to_csr(
        rows["cell_integer_id"], rows["gene_integer_id"], rows["value"], (n_cells, n_genes)
    )
    np.testing.assert_allclose(got.toarray(), x.toarray(), rtol=1e-6, atol=1e-6)


def test_slice_matches_anndata(con: duckdb.DuckDBPyConnection, fixture_name: str) -> None:
    path = FIXTURES / fixture_name
    adata = source(fixture_name)
    rng = np.random.default_rng(0)
    cells = sorted(rng.choice(adata.n_obs, size=min(25, adata.n_obs), replace=False).tolist())
    genes = sorted(rng.choice(adata.n_vars, size=min(40, adata.n_vars), replace=False).tolist())
    rows = con.execute(
        f"SELECT cell_integer_id, gene_integer_id, cell_id, gene_id, value "
        f"FROM slaf_slice('{path}', cells := $cells, genes := $genes)",
        {"cells": cells, "genes": genes},
    ).fetchnumpy()
    cell_pos = {c: i for i, c in enumerate(cells)}
    gene_pos = {g: j for j, g in enumerate(genes)}
    got = coo_to_csr(
        np.array([cell_pos[c] for c in rows["cell_integer_id"]], dtype=np.int64),
        np.array([gene_pos[g] for g in rows["gene_integer_id"]], dtype=np.int64),
        rows["value"],
        (len(cells), len(genes)),
    )
    want = sp.csr_matrix(adata.X)[cells][:, genes].toarray()
    np.testing.assert_allclose(got.toarray(), want, rtol=1e-6, atol=1e-6)
    obs_names = adata.obs_names.to_numpy()
    np.testing.assert_array_equal(
        np.asarray(rows["cell_id"], dtype=object), obs_names[rows["cell_integer_id"]]
    )
    # Names select the same entries as ids.
    by_name = con.execute(
        f"SELECT count(*), sum(value) FROM slaf_slice('{path}', cells := $c, genes := $g)",
        {
            "c": obs_names[cells].tolist(),
            "g": SLAFArray(path).var["gene_id"].to_numpy()[genes].tolist(),
        },
    ).fetchone()
    assert by_name[0] == len(rows["value"])
    assert by_name[1] == pytest.approx(float(np.sum(rows["value"], dtype=np.float64)), rel=1e-6)


def test_cell_filter_matches_python_view(con: duckdb.DuckDBPyConnection) -> None:
    path = FIXTURES / "pbmc68k_reduced_inmemory.slaf"
    data = SLAFArray(path)
    ids = np.flatnonzero((data.obs["louvain"] == "3").to_numpy())
    want = data.get_submatrix(ids.tolist())
    rows = con.execute(
        f"SELECT cell_integer_id, gene_integer_id, value "
        f"FROM slaf_slice('{path}', cell_filter := 'louvain = ''3''')"
    ).fetchnumpy()
    pos = {c: i for i, c in enumerate(ids)}
    got = coo_to_csr(
        np.array([pos[c] for c in rows["cell_integer_id"]]),
        rows["gene_integer_id"],
        rows["value"],
        want.shape,
    )
    np.testing.assert_allclose(got.toarray(), want.toarray(), rtol=1e-6)


def test_obsm_matches_anndata(con: duckdb.DuckDBPyConnection) -> None:
    name = "pbmc68k_reduced_inmemory.slaf"
    path = FIXTURES / name
    got = con.execute(
        f"SELECT X_umap FROM slaf_scan('{path}', 'cells') ORDER BY cell_integer_id"
    ).fetchnumpy()["X_umap"]
    got = np.stack([np.asarray(v, dtype=np.float32) for v in got])
    np.testing.assert_allclose(got, source(name).obsm["X_umap"], rtol=1e-6)


def test_geneformer_tokens_rank_the_cells_genes(con: duckdb.DuckDBPyConnection) -> None:
    """Each cell's tokens are its expressed genes (+4), in non-increasing count order."""
    name = "pbmc10x_v3_mtx_chunked.slaf"
    path = FIXTURES / name
    x = sp.csr_matrix(source(name).X)
    rows = con.execute(
        f"SELECT cell_integer_id, input_ids, attention_mask "
        f"FROM slaf_tokenize('{path}', tokenizer := 'geneformer', max_genes := 16) "
        f"ORDER BY cell_integer_id"
    ).fetchall()
    assert len(rows) == x.shape[0]
    for cell, ids, mask in rows:
        row = x[cell]
        counts = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
        genes = [t - 4 for t, m in zip(ids, mask, strict=True) if m]
        assert len(genes) == min(16, len(counts))
        values = [counts[g] for g in genes]
        assert values == sorted(values, reverse=True)
        # No gene left out ranks above the last one kept.
        if genes:
            left_out = [v for g, v in counts.items() if g not in set(genes)]
            assert all(v <= values[-1] for v in left_out)


def test_errors_name_the_problem(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(duckdb.Error, match="not a SLAF dataset"):
        con.execute(f"SELECT * FROM slaf_info('{tmp_path}')")
    path = FIXTURES / "pbmc10x_v3_mtx_chunked.slaf"
    with pytest.raises(duckdb.Error, match="unknown gene name"):
        con.execute(f"SELECT * FROM slaf_slice('{path}', genes := ['XYZ'])")
    # The connection keeps working after errors.
    assert con.execute(f"SELECT nnz FROM slaf_info('{path}')").fetchone() == (23866,)
