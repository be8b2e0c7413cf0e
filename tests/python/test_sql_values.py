"""Values from the DuckDB extension match the Python view (``SLAFArray``) and the source AnnData
of every slafdb fixture (shared, or generated when the shared data is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import duckdb
import lance
import numpy as np
import pyarrow.compute as pc
import pytest
import scipy.sparse as sp

from slaf import SLAFArray
from slaf.convert import append, convert

from conftest import FIXTURES, REPO, needs_fixtures, needs_shared, source, stand_in

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


@needs_fixtures
def test_cell_filter_matches_python_view(con: duckdb.DuckDBPyConnection) -> None:
    path = FIXTURES / stand_in("pbmc68k_reduced_inmemory.slaf")
    data = SLAFArray(path)
    ids = np.flatnonzero((data.obs["louvain"] == "3").to_numpy())
    want = data.get_submatrix(ids.tolist(), format="csr")
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


@needs_fixtures
def test_obsm_matches_anndata(con: duckdb.DuckDBPyConnection) -> None:
    name = stand_in("pbmc68k_reduced_inmemory.slaf")
    path = FIXTURES / name
    got = con.execute(
        f"SELECT X_umap FROM slaf_scan('{path}', 'cells') ORDER BY cell_integer_id"
    ).fetchnumpy()["X_umap"]
    got = np.stack([np.asarray(v, dtype=np.float32) for v in got])
    np.testing.assert_allclose(got, source(name).obsm["X_umap"], rtol=1e-6)


@needs_fixtures
def test_geneformer_tokens_rank_the_cells_genes(con: duckdb.DuckDBPyConnection) -> None:
    """Each cell's tokens are its expressed genes (+4), in non-increasing count order."""
    name = stand_in("pbmc10x_v3_mtx_chunked.slaf")
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


def geneformer_tokens(x: sp.csr_matrix, gene_ids: list[int], max_genes: int) -> list[list[int]]:
    """Geneformer V1 tokens of each row of ``x`` (columns are ``gene_ids``) in the slaf
    layout, without gene medians: stored genes by count descending, ties to the smaller gene id,
    token = gene id + 4, padded with 0 to ``max_genes``."""
    rows = []
    for i in range(x.shape[0]):
        row = x[i]
        entries = [(-v, gene_ids[j]) for j, v in zip(row.indices, row.data, strict=True) if v != 0]
        tokens = [g + 4 for _, g in sorted(entries)[:max_genes]]
        rows.append(tokens + [0] * (max_genes - len(tokens)))
    return rows


@needs_fixtures
def test_geneformer_tokens_of_a_gene_selection(con: duckdb.DuckDBPyConnection) -> None:
    """``genes :=`` by names: tokens are those of the Python view's submatrix of the genes."""
    path = FIXTURES / stand_in("pbmc10x_v3_mtx_chunked.slaf")
    data = SLAFArray(path)
    rng = np.random.default_rng(1)
    ids = sorted(rng.choice(data.shape[1], size=60, replace=False).tolist())
    names = data.var["gene_id"].to_numpy()[ids].tolist()
    rows = con.execute(
        f"SELECT cell_integer_id, input_ids FROM slaf_tokenize('{path}', genes := $g, "
        f"max_genes := 6) ORDER BY cell_integer_id",
        {"g": names[::-1]},  # selection order does not matter
    ).fetchall()
    want = geneformer_tokens(sp.csr_matrix(data.get_submatrix(None, ids, format="csr")), ids, 6)
    assert [r[0] for r in rows] == list(range(data.shape[0]))
    assert [list(r[1]) for r in rows] == want
    assert any(any(t != 0 for t in w) for w in want)


@needs_fixtures
def test_geneformer_tokens_of_a_gene_filter(con: duckdb.DuckDBPyConnection) -> None:
    """``gene_filter :=`` selects the genes the Python view's var selects; ``cells :=`` too."""
    path = FIXTURES / stand_in("perturb500_chunked.slaf")
    data = SLAFArray(path)
    ids = np.flatnonzero((data.var["mean_counts"] > 1.0).to_numpy()).tolist()
    assert 0 < len(ids) < data.shape[1]
    cells = list(range(0, data.shape[0], 7))
    rows = con.execute(
        f"SELECT cell_integer_id, input_ids FROM slaf_tokenize('{path}', cells := $c, "
        f"gene_filter := 'mean_counts > 1.0', max_genes := 32) ORDER BY cell_integer_id",
        {"c": cells},
    ).fetchall()
    want = geneformer_tokens(sp.csr_matrix(data.get_submatrix(cells, ids, format="csr")), ids, 32)
    assert [r[0] for r in rows] == cells
    assert [list(r[1]) for r in rows] == want


@needs_fixtures
def test_scgpt_tokens_of_a_gene_selection(con: duckdb.DuckDBPyConnection) -> None:
    """scGPT over selected genes: ``<cls>`` then exactly the cell's stored selected genes
    (all fit), in ascending gene order, with bins in 1..n_bins-1."""
    path = FIXTURES / stand_in("perturb500_chunked.slaf")
    data = SLAFArray(path)
    ids = list(range(0, data.shape[1], 3))
    rows = con.execute(
        f"SELECT cell_integer_id, input_ids, values FROM slaf_tokenize('{path}', "
        f"tokenizer := 'scgpt', genes := '0:{data.shape[1]}:3', max_genes := 1000, n_bins := 11) "
        f"ORDER BY cell_integer_id"
    ).fetchall()
    x = sp.csr_matrix(data.get_submatrix(None, ids, format="csr"))
    assert len(rows) == data.shape[0]
    for cell, tokens, values in rows:
        row = x[cell]
        stored = sorted(ids[j] + 4 for j, v in zip(row.indices, row.data, strict=True) if v != 0)
        n = len(stored)
        assert tokens[0] == 1 and values[0] == 0
        assert list(tokens[1 : n + 1]) == stored
        assert all(t == 0 for t in tokens[n + 1 :])
        assert all(1 <= v <= 10 for v in values[1 : n + 1])


@pytest.fixture(scope="module")
def layered(halves, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ad.AnnData]:
    """The ``halves`` AnnData (X, layers ``counts`` and ``half``) converted by ``slaf.convert``
    from its two h5ad files."""
    adata, a, b = halves
    out = convert([a, b], tmp_path_factory.mktemp("layered") / "layered.slaf", chunk_size=64)
    return Path(out), adata


def test_slice_of_a_layer_matches_anndata(
    con: duckdb.DuckDBPyConnection, layered: tuple[Path, ad.AnnData]
) -> None:
    path, adata = layered
    cells, genes = [250, 3, 119, 120, 77], [39, 0, 17, 5]
    for layer in ("counts", "half"):
        rows = con.execute(
            f"SELECT cell_integer_id, gene_integer_id, cell_id, value FROM slaf_slice('{path}', "
            f"cells := $c, genes := $g, layer := '{layer}')",
            {"c": cells, "g": genes},
        ).fetchnumpy()
        want = sp.csr_matrix(adata.layers[layer])[cells][:, genes].toarray()
        got = coo_to_csr(
            np.array([cells.index(c) for c in rows["cell_integer_id"]]),
            np.array([genes.index(g) for g in rows["gene_integer_id"]]),
            rows["value"],
            want.shape,
        )
        np.testing.assert_array_equal(got.toarray(), want)
        assert len(rows["value"]) == np.count_nonzero(want)
        np.testing.assert_array_equal(
            np.asarray(rows["cell_id"], dtype=object),
            adata.obs_names.to_numpy()[rows["cell_integer_id"]],
        )
        # The whole layer, by a cell predicate over every cell.
        rows = con.execute(
            f"SELECT cell_integer_id, gene_integer_id, value FROM slaf_slice('{path}', "
            f"cell_filter := 'cell_integer_id >= 0', layer := '{layer}')"
        ).fetchnumpy()
        got = coo_to_csr(
            rows["cell_integer_id"], rows["gene_integer_id"], rows["value"], adata.shape
        )
        np.testing.assert_array_equal(got.toarray(), adata.layers[layer].toarray())


def test_layers_table_matches_anndata(
    con: duckdb.DuckDBPyConnection, layered: tuple[Path, ad.AnnData]
) -> None:
    path, adata = layered
    table = con.execute(f"SELECT * FROM slaf_scan('{path}', 'layers')").fetchnumpy()
    assert {"cell_integer_id", "gene_integer_id", "counts", "half"} <= set(table)
    for layer in ("counts", "half"):
        values = table[layer]
        keep = ~np.ma.getmaskarray(values)
        got = coo_to_csr(
            table["cell_integer_id"][keep],
            table["gene_integer_id"][keep],
            np.ma.getdata(values)[keep],
            adata.shape,
        )
        np.testing.assert_array_equal(got.toarray(), adata.layers[layer].toarray())
    one = con.execute(
        f"SELECT sum(half) FROM slaf_scan('{path}', 'layers', columns := ['half'], "
        f"filter := 'cell_integer_id = 250')"
    ).fetchone()[0]
    assert one == pytest.approx(float(adata.layers["half"][250].sum()))


def test_unknown_layer_is_a_clear_error(
    con: duckdb.DuckDBPyConnection, layered: tuple[Path, ad.AnnData]
) -> None:
    path, _ = layered
    with pytest.raises(duckdb.Error, match=r'no layer "nope".*available: counts, half'):
        con.execute(f"SELECT * FROM slaf_slice('{path}', cells := [0], layer := 'nope')")


def test_append_is_seen_by_the_same_connection(
    con: duckdb.DuckDBPyConnection, halves, tmp_path: Path
) -> None:
    """Datasets are cached per process; an append must not be served stale."""
    adata, a, b = halves
    path = Path(convert(a, tmp_path / "grows.slaf"))
    count = f"SELECT count(*) FROM slaf_scan('{path}', 'expression')"
    assert con.execute(f"SELECT n_cells FROM slaf_info('{path}')").fetchone() == (120,)
    x = sp.csr_matrix(adata.X)
    assert con.execute(count).fetchone() == (np.count_nonzero(x[:120].toarray()),)
    append(b, path)
    assert con.execute(f"SELECT n_cells FROM slaf_info('{path}')").fetchone() == (300,)
    assert con.execute(count).fetchone() == (np.count_nonzero(x.toarray()),)
    rows = con.execute(
        f"SELECT gene_integer_id, value FROM slaf_slice('{path}', cells := ['cell250'])"
    ).fetchnumpy()
    got = np.zeros(adata.n_vars, dtype=np.float32)
    got[rows["gene_integer_id"]] = rows["value"]
    np.testing.assert_array_equal(got, x[250].toarray().ravel())


def test_new_lance_version_is_seen_once_config_commits_it(
    con: duckdb.DuckDBPyConnection, halves, tmp_path: Path
) -> None:
    """Readers open the table versions config.json records: a new Lance version of the
    expression table written behind config's back is not seen (config and tables never
    disagree); once config.json records it, it is seen (no stale cache)."""
    _, a, _ = halves
    path = Path(convert(a, tmp_path / "rewritten.slaf"))
    total = f"SELECT sum(value) FROM slaf_slice('{path}', cells := '0:120')"
    scan = f"SELECT sum(value) FROM slaf_scan('{path}', 'expression')"
    before = con.execute(total).fetchone()[0]
    table = lance.dataset(path / "expression.lance").to_table()
    value = table.schema.field("value")
    doubled = table.set_column(
        table.schema.get_field_index("value"),
        value,
        pc.multiply(table["value"], 2).cast(value.type),
    )
    written = lance.write_dataset(doubled, path / "expression.lance", mode="overwrite")
    assert con.execute(total).fetchone()[0] == pytest.approx(before)
    config = json.loads((path / "config.json").read_text())
    config["table_versions"]["expression"] = written.version
    (path / "config.json").write_text(json.dumps(config))
    assert con.execute(total).fetchone()[0] == pytest.approx(2 * before)
    assert con.execute(scan).fetchone()[0] == pytest.approx(2 * before)


@needs_shared
def test_errors_name_the_problem(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(duckdb.Error, match="not a SLAF dataset"):
        con.execute(f"SELECT * FROM slaf_info('{tmp_path}')")
    path = FIXTURES / "pbmc10x_v3_mtx_chunked.slaf"
    with pytest.raises(duckdb.Error, match="unknown gene name"):
        con.execute(f"SELECT * FROM slaf_slice('{path}', genes := ['XYZ'])")
    # The connection keeps working after errors.
    assert con.execute(f"SELECT nnz FROM slaf_info('{path}')").fetchone() == (23866,)
