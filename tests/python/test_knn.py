"""Nearest-neighbour search over obsm/varm: exact search against numpy, indexed search's
recall against exact, filters, persistence, slafdb compatibility, label transfer, the DuckDB
function, the CLI and bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anndata as ad
import duckdb
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import slaf
from slaf import SLAFArray, convert
from slaf.cli import main as cli
from slaf.convert import append

from conftest import REAL, needs_shared

REPO = Path(__file__).resolve().parents[2]
SLAFDB_PYTHON = REPO / ".venv-slafdb" / "bin" / "python"
EXTENSION = REPO / "python" / "slaf" / "slaf.duckdb_extension"

N_CLUSTERS = 12
DIM = 16


def _clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> tuple:
    labels = rng.integers(0, len(centres), n)
    vectors = centres[labels] + rng.normal(size=(n, centres.shape[1]))
    return vectors.astype(np.float32), labels


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """4,000 cells with clustered 16-d embeddings (obsm X_emb), their cluster as cell_type,
    a tissue column, gene embeddings (varm G), and 300 held-out query cells."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(N_CLUSTERS, DIM)) * 4
    n, g = 4000, 25
    vectors, labels = _clustered(rng, n, centres)
    queries, query_labels = _clustered(rng, 300, centres)
    adata = ad.AnnData(
        X=sp.random(n, g, density=0.1, format="csr", random_state=rng, dtype=np.float32),
        obs=pd.DataFrame(
            {
                "cell_type": [f"type{i}" for i in labels],
                "tissue": rng.choice(["lung", "liver", "gut"], n),
            },
            index=[f"c{i}" for i in range(n)],
        ),
        var=pd.DataFrame(index=[f"g{j}" for j in range(g)]),
    )
    adata.obsm["X_emb"] = vectors
    adata.varm["G"] = rng.normal(size=(g, 4)).astype(np.float32)
    root = tmp_path_factory.mktemp("knn")
    adata.write_h5ad(root / "src.h5ad")
    convert(root / "src.h5ad", root / "base.slaf")
    return {
        "root": root,
        "adata": adata,
        "queries": queries,
        "query_labels": np.array([f"type{i}" for i in query_labels]),
    }


@pytest.fixture
def copy(clustered: dict, tmp_path: Path) -> Path:
    """A fresh copy of the clustered dataset, for tests that index or change it."""
    import shutil

    path = tmp_path / "d.slaf"
    shutil.copytree(clustered["root"] / "base.slaf", path)
    return path


def _brute(vectors: np.ndarray, queries: np.ndarray, metric: str, k: int) -> tuple:
    """Ids and distances of the k nearest rows, the way Lance defines each metric."""
    v, q = vectors.astype(np.float64), queries.astype(np.float64)
    if metric == "l2":
        d = ((q[:, None, :] - v[None, :, :]) ** 2).sum(-1)
    elif metric == "cosine":
        d = 1 - (q @ v.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(v, axis=1))
    else:
        d = 1 - q @ v.T
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def _ids(hits, n_queries: int, k: int) -> np.ndarray:
    return hits["cell_integer_id"].to_numpy().reshape(n_queries, k)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    shared = [len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(shared))


@pytest.mark.parametrize("metric", ["l2", "cosine", "dot"])
def test_exact_search_equals_numpy(clustered: dict, metric: str) -> None:
    data = SLAFArray(clustered["root"] / "base.slaf")
    queries = clustered["queries"][:20]
    hits = data.nearest_cells(queries, k=10, key="X_emb", metric=metric)
    truth, distances = _brute(clustered["adata"].obsm["X_emb"], queries, metric, 10)
    assert hits.columns == ["query", "cell_integer_id", "cell_id", "distance"]
    assert hits["query"].to_list() == list(np.repeat(np.arange(20), 10))
    np.testing.assert_array_equal(_ids(hits, 20, 10), truth)
    np.testing.assert_allclose(
        hits["distance"].to_numpy().reshape(20, 10), distances, rtol=1e-4, atol=1e-4
    )
    names = clustered["adata"].obs_names.to_numpy()[truth.ravel()]
    assert hits["cell_id"].to_list() == list(names)


def test_one_vector_filters_and_columns(clustered: dict) -> None:
    data = SLAFArray(clustered["root"] / "base.slaf")
    obs = clustered["adata"].obs
    query = clustered["queries"][0]
    hits = data.nearest_cells(query, k=7, filter="tissue = 'lung'", columns=["tissue"])
    lung = np.flatnonzero(obs["tissue"].to_numpy() == "lung")
    truth, _ = _brute(clustered["adata"].obsm["X_emb"][lung], query[None], "l2", 7)
    assert hits["cell_integer_id"].to_list() == list(lung[truth[0]])
    assert set(hits["tissue"]) == {"lung"}
    # Fewer candidates than k: all of them, nearest first.
    few = data.nearest_cells(query, k=50, filter="cell_id IN ('c1', 'c2', 'c3')")
    assert sorted(few["cell_id"]) == ["c1", "c2", "c3"]
    assert list(few["distance"]) == sorted(few["distance"])


def test_indexed_search_recall_filters_and_reopen(copy: Path, clustered: dict) -> None:
    data = SLAFArray(copy)
    before = json.loads((copy / "config.json").read_text())["table_versions"]["cells"]
    built = data.build_vector_index("X_emb")
    assert built["index_type"] == "IVF_FLAT" and built["metric"] == "l2"
    assert built["num_partitions"] == round(4000**0.5)
    assert json.loads((copy / "config.json").read_text())["table_versions"]["cells"] > before

    reopened = SLAFArray(copy)
    assert [i["key"] for i in reopened.vector_indexes()] == ["X_emb"]
    queries = clustered["queries"]
    truth, _ = _brute(clustered["adata"].obsm["X_emb"], queries, "l2", 15)
    hits = reopened.nearest_cells(queries, k=15)
    assert _recall(_ids(hits, len(queries), 15), truth) >= 0.95
    # Probing every partition makes an IVF_FLAT search exact.
    full = reopened.nearest_cells(queries[:10], k=15, nprobes=built["num_partitions"])
    np.testing.assert_array_equal(_ids(full, 10, 15), truth[:10])

    gut = reopened.nearest_cells(queries[:5], k=15, filter="tissue = 'gut'", columns=["tissue"])
    assert set(gut["tissue"]) == {"gut"} and len(gut) == 75
    # A filter leaving fewer than k candidates in the probed partitions: more are probed.
    few = reopened.nearest_cells(queries[:4], k=10, filter="cell_id IN ('c1', 'c2', 'c3')")
    assert few.group_by("query").len().sort("query")["len"].to_list() == [3, 3, 3, 3]

    # Another metric than the index's is answered exactly.
    cosine = reopened.nearest_cells(queries[:5], k=5, metric="cosine")
    np.testing.assert_array_equal(
        _ids(cosine, 5, 5), _brute(clustered["adata"].obsm["X_emb"], queries[:5], "cosine", 5)[0]
    )
    reopened.drop_vector_index("X_emb")
    assert SLAFArray(copy).vector_indexes() == []


def test_pq_index_with_refine_reaches_high_recall(copy: Path, clustered: dict) -> None:
    data = SLAFArray(copy)
    built = data.build_vector_index("X_emb", index_type="IVF_PQ", num_partitions=16)
    assert built["index_type"] == "IVF_PQ"
    queries = clustered["queries"][:100]
    truth, _ = _brute(clustered["adata"].obsm["X_emb"], queries, "l2", 15)
    hits = data.nearest_cells(queries, k=15, refine=10, nprobes=8)
    assert _recall(_ids(hits, 100, 15), truth) >= 0.95


def test_appended_cells_are_found_before_they_are_indexed(copy: Path, clustered: dict) -> None:
    SLAFArray(copy).build_vector_index("X_emb")
    extra = clustered["adata"][:50].copy()
    extra.obs_names = [f"new{i}" for i in range(50)]
    extra.obsm["X_emb"] = extra.obsm["X_emb"] + 100  # far from everything indexed
    extra.write_h5ad(copy.parent / "extra.h5ad")
    append(copy.parent / "extra.h5ad", copy)
    data = SLAFArray(copy)
    (index,) = data.vector_indexes()
    assert (index["indexed_rows"], index["unindexed_rows"]) == (4000, 50)
    hits = data.nearest_cells(extra.obsm["X_emb"][:3], k=1)
    assert hits["cell_id"].to_list() == ["new0", "new1", "new2"]
    assert "50 rows not yet indexed" in data._native.info()


def test_replacing_an_indexed_embedding_drops_its_index(copy: Path) -> None:
    from slaf.integrations import read_slaf

    lazy = read_slaf(copy)
    lazy.obsm["X_new"] = np.eye(4000, 3, dtype=np.float32)
    SLAFArray(copy).build_vector_index("X_new")
    lazy = read_slaf(copy)
    lazy.obsm["X_new"] = np.ones((4000, 3), dtype=np.float32)
    data = SLAFArray(copy)
    assert data.vector_indexes() == []  # never an index over the old vectors
    hits = data.nearest_cells(np.ones(3), k=2, key="X_new")
    assert hits["distance"].to_list() == [0.0, 0.0]


def test_slafdb_opens_an_indexed_dataset(copy: Path, clustered: dict) -> None:
    if not SLAFDB_PYTHON.exists():
        missing = f"slafdb 0.5.2 is not installed ({SLAFDB_PYTHON} is missing; bash .ci/setup)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    SLAFArray(copy).build_vector_index("X_emb")
    script = """
import sys
import numpy as np
from slaf.integrations import read_slaf
a = read_slaf(sys.argv[1])
assert a.shape == (4000, 25), a.shape
emb = np.asarray(a.obsm["X_emb"])
print(emb.shape[0], emb.shape[1], float(emb.sum()), flush=True)
# slafdb 0.5.2's background metadata thread can abort the interpreter at shutdown (on any
# dataset, indexed or not): leave before it does.
import os
os._exit(0)
"""
    done = subprocess.run(
        [str(SLAFDB_PYTHON), "-c", script, str(copy)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows, width, total = done.stdout.split()[-3:]
    assert (int(rows), int(width)) == (4000, DIM)
    assert float(total) == pytest.approx(float(clustered["adata"].obsm["X_emb"].sum()), rel=1e-4)


def test_nearest_genes_by_name_leaves_the_gene_out(clustered: dict) -> None:
    data = SLAFArray(clustered["root"] / "base.slaf")
    hits = data.nearest_genes(["g3", "g7"], k=4, key="G")
    assert hits["query"].to_list() == ["g3"] * 4 + ["g7"] * 4
    vectors = clustered["adata"].varm["G"]
    for name, own in (("g3", 3), ("g7", 7)):
        truth, _ = _brute(vectors, vectors[own][None], "l2", 5)
        expected = [f"g{i}" for i in truth[0] if i != own][:4]
        assert hits.filter(hits["query"] == name)["gene_id"].to_list() == expected
    as_index = data.nearest_genes(pd.Index(["g3", "g7"]), k=4, key="G")
    assert as_index.equals(hits)
    by_vector = data.nearest_genes(vectors[3], k=1)
    assert by_vector["gene_id"].to_list() == ["g3"]


def test_transfer_labels_recovers_held_out_labels(clustered: dict) -> None:
    data = SLAFArray(clustered["root"] / "base.slaf")
    out = slaf.tl.transfer_labels(data, clustered["queries"], key="X_emb", label="cell_type")
    assert list(out.columns) == ["cell_type", "confidence", "n_votes"]
    accuracy = (out["cell_type"].to_numpy() == clustered["query_labels"]).mean()
    print(f"label transfer accuracy on held-out generated cells: {accuracy:.3f}")
    assert accuracy >= 0.97, accuracy
    assert out["confidence"].between(0, 1).all() and (out["n_votes"] == 15).all()
    uniform = slaf.tl.transfer_labels(
        data, clustered["queries"][:10], label="cell_type", weighting="uniform"
    )
    assert (uniform["cell_type"].to_numpy() == clustered["query_labels"][:10]).all()


@needs_shared
def test_transfer_labels_on_pbmc68k_reduced(tmp_path: Path) -> None:
    adata = ad.read_h5ad(REAL / "pbmc68k_reduced.h5ad")
    rng = np.random.default_rng(0)
    held = rng.random(adata.n_obs) < 0.2
    reference = adata[~held].copy()
    reference.write_h5ad(tmp_path / "ref.h5ad")
    convert(tmp_path / "ref.h5ad", tmp_path / "ref.slaf")
    data = SLAFArray(tmp_path / "ref.slaf")
    data.build_vector_index("X_pca", num_partitions=8)
    out = slaf.tl.transfer_labels(data, adata.obsm["X_pca"][held], key="X_pca", label="louvain")
    truth = adata.obs["louvain"].to_numpy()[held].astype(str)
    accuracy = (out["louvain"].to_numpy() == truth).mean()
    # Louvain clusters were computed on this very PCA's neighbour graph: kNN votes recover them.
    print(f"label transfer accuracy on held-out pbmc68k_reduced cells: {accuracy:.3f}")
    assert accuracy >= 0.9, accuracy


def test_duckdb_slaf_knn_matches_python(copy: Path, clustered: dict) -> None:
    data = SLAFArray(copy)
    data.build_vector_index("X_emb")
    query = clustered["queries"][0]
    expected = data.nearest_cells(query, k=6, filter="tissue = 'lung'")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{EXTENSION}'")
    vector = "[" + ", ".join(repr(float(v)) for v in query) + "]"
    rows = con.execute(
        f"SELECT rank, cell_integer_id, cell_id, distance FROM slaf_knn('{copy}', 'obsm', "
        f"'X_emb', {vector}, k := 6, filter := 'tissue = ''lung''')"
    ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r[2] for r in rows] == expected["cell_id"].to_list()
    np.testing.assert_allclose([r[3] for r in rows], expected["distance"].to_numpy(), rtol=1e-6)
    info = con.execute(f"SELECT vector_indexes FROM slaf_info('{copy}')").fetchone()[0]
    assert info == ["obsm/X_emb: IVF_FLAT, l2, 63 partitions"]
    genes = con.execute(
        f"SELECT gene_id FROM slaf_knn('{copy}', 'varm', 'G', [1, 2, 3, 4]::FLOAT[4], k := 2)"
    ).fetchall()
    assert len(genes) == 2
    for sql, message in [
        (f"slaf_knn('{copy}', 'obsm', 'X_emb', [1, 2])", "must have 16 values"),
        (f"slaf_knn('{copy}', 'obsm', 'nope', [1, 2])", 'no obsm key "nope"'),
        (f"slaf_knn('{copy}', 'obsm', 'X_emb', {vector}, k := 0)", "k must be between"),
        (f"slaf_knn('{copy}', 'cells', 'X_emb', {vector})", "'obsm' or 'varm'"),
        (f"slaf_knn('{copy}', 'obsm', 'X_emb', [1, NULL])", "contains NULL"),
        (f"slaf_knn('{copy}', 'obsm', 'X_emb', {vector}, filter := 'nocol = 1')", "nocol"),
    ]:
        with pytest.raises(duckdb.Error, match=message):
            con.execute(f"SELECT * FROM {sql}").fetchall()


def test_cli_index_info_and_drop(copy: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(["index", str(copy), "--vectors", "obsm/X_emb", "--metric", "cosine"]) == 0
    assert "indexed obsm/X_emb: IVF_FLAT, cosine, 63 partitions" in capsys.readouterr().out
    assert cli(["info", str(copy)]) == 0
    assert "vector indexes: obsm/X_emb: IVF_FLAT, cosine" in capsys.readouterr().out
    assert cli(["index", str(copy), "--vectors", "obsm/X_emb", "--drop"]) == 0
    assert cli(["index", str(copy), "--vectors", "obsm/X_emb", "--drop"]) == 1
    assert "has no vector index" in capsys.readouterr().err
    assert cli(["index", str(copy), "--vectors", "X_emb"]) == 2
    assert cli(["index", str(copy), "--vectors", "obsm/cell_type"]) == 1
    assert "not an obsm embedding" in capsys.readouterr().err


def test_bad_input_names_the_problem(clustered: dict, copy: Path) -> None:
    data = SLAFArray(clustered["root"] / "base.slaf")
    query = clustered["queries"][0]
    with pytest.raises(KeyError, match="no obsm key 'X_nope'"):
        data.nearest_cells(query, key="X_nope")
    with pytest.raises(ValueError, match="dimension 3 but obsm"):
        data.nearest_cells(np.ones(3), key="X_emb")
    with pytest.raises(ValueError, match="k must be at least 1"):
        data.nearest_cells(query, k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        data.nearest_cells(query, k=2.5)
    with pytest.raises(ValueError, match="non-finite"):
        data.nearest_cells(np.full(DIM, np.nan))
    with pytest.raises(ValueError, match="nocol"):
        data.nearest_cells(query, filter="nocol = 1")
    with pytest.raises(KeyError, match="no obs column 'nope'"):
        data.nearest_cells(query, columns=["nope"])
    with pytest.raises(ValueError, match="2-D array"):
        data.nearest_cells(np.ones((2, 2, DIM)))
    with pytest.raises(KeyError, match="no obs column 'nope' to transfer"):
        slaf.tl.transfer_labels(data, query, label="nope")
    writable = SLAFArray(copy)
    with pytest.raises(ValueError, match="not an obsm embedding"):
        writable.build_vector_index("cell_type", section="obsm")
    with pytest.raises(ValueError, match="unknown index type"):
        writable.build_vector_index("X_emb", index_type="HNSW")
    with pytest.raises(ValueError, match="num_partitions must be between"):
        writable.build_vector_index("X_emb", num_partitions=10**6)
    with pytest.raises(ValueError, match="num_sub_vectors must divide"):
        writable.build_vector_index("X_emb", index_type="IVF_PQ", num_sub_vectors=5)
    assert writable.vector_indexes() == []
