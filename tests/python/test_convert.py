"""Conversion (slaf.convert / slaf append / the slaf CLI): every real input converts and reads
back exactly; multi-file and append keep cell offsets right; failures leave nothing behind."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import h5py
import lance
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

import slaf
from slaf import SLAFArray
from slaf.convert import _jsonable, append, convert
from slaf.errors import InvalidArgumentError, SLAFError

from conftest import REAL, REPO, needs_shared

SLAF_CLI = [sys.executable, "-m", "slaf.cli"]


def _csr(x) -> sp.csr_matrix:
    m = sp.csr_matrix(x, dtype=np.float32)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def assert_same_matrix(actual: sp.csr_matrix, expected) -> None:
    expected = _csr(expected)
    actual = _csr(actual)
    assert actual.shape == expected.shape
    assert (actual != expected).nnz == 0


def _close(a, b) -> bool:
    """Equal JSON values, floats to the last few bits."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(b, int | float) and np.isclose(a, b, rtol=1e-12, atol=0)
    return a == b


def _decode(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _unique(names: list[str]) -> list[str]:
    return list(ad.utils.make_index_unique(pd.Index(names)))


def tenx_h5(path: Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """X, barcodes and unique gene names of a 10x HDF5 file, read independently."""
    with h5py.File(path) as f:
        groups = ["matrix"] if "matrix" in f else sorted(k for k in f if "indptr" in f[k])
        parts, names = [], []
        for g in groups:
            g = f[g]
            n_genes, n_cells = g["shape"][:]
            parts.append(
                sp.csc_matrix(
                    (g["data"][:], g["indices"][:], g["indptr"][:]), shape=(n_genes, n_cells)
                ).T
            )
            names += _decode(g["features/name"][:] if "features" in g else g["gene_names"][:])
        barcodes = _decode(f[groups[0]]["barcodes"][:])
    # CellRanger 2 files with several genomes: the converter keeps the file's group order.
    with h5py.File(path) as f:
        order = ["matrix"] if "matrix" in f else [k for k in f if "indptr" in f[k]]
    if order != groups:
        index = [groups.index(g) for g in order]
        parts = [parts[i] for i in index]
        names = []
        with h5py.File(path) as f:
            for g in order:
                names += _decode(f[g]["gene_names"][:])
    return _csr(sp.hstack(parts)), barcodes, _unique(names)


def tenx_mtx(folder: Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    def find(name: str) -> Path:
        return next(p for p in (folder / name, folder / f"{name}.gz") if p.exists())

    def open_(p: Path):
        return gzip.open(p) if p.suffix == ".gz" else open(p, "rb")

    with open_(find("matrix.mtx")) as f:
        x = _csr(scipy.io.mmread(f).T)
    genes = folder / "genes.tsv"
    genes = genes if genes.exists() else find("features.tsv")
    table = pd.read_csv(genes, sep="\t", header=None, dtype=str)
    barcodes = pd.read_csv(find("barcodes.tsv"), sep="\t", header=None, dtype=str)[0]
    return x, list(barcodes), _unique(list(table[1]))


INPUTS = [
    "pbmc68k_reduced.h5ad",
    "cellxgene_small_perturbations.h5ad",
    "mouse_merfish_val.h5ad",
    "scanpy-10x-v3/filtered_feature_bc_matrix.h5",
    "scanpy-10x-v3/filtered_feature_bc_matrix",
    "scanpy-10x-v2/filtered_gene_bc_matrices_h5.h5",
    "scanpy-10x-v2/multiple_genomes.h5",
    "scanpy-10x-v2/filtered_gene_bc_matrices/hg19_chr21",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("converted")
    paths = {}
    for i, name in enumerate(INPUTS):
        paths[name] = Path(convert(REAL / name, out / f"{i}.slaf", chunk_size=97))
    return paths


def _expected(name: str) -> tuple[sp.csr_matrix, list[str], list[str]]:
    path = REAL / name
    if path.is_dir():
        return tenx_mtx(path)
    if path.suffix == ".h5":
        return tenx_h5(path)
    adata = ad.read_h5ad(path)
    return _csr(adata.X), list(adata.obs_names), list(adata.var_names)


@needs_shared
@pytest.mark.parametrize("name", INPUTS)
def test_every_real_input_reads_back_exactly(converted: dict[str, Path], name: str) -> None:
    x, cells, genes = _expected(name)
    data = SLAFArray(converted[name])
    assert data.shape == x.shape
    assert_same_matrix(data.get_submatrix(format="csr"), x)
    assert data.obs["cell_id"].to_list() == cells
    assert data.var["gene_id"].to_list() == genes
    assert data.obs["cell_integer_id"].to_list() == list(range(len(cells)))
    assert data._native.start_index_source() == "stored"
    # A few cells one at a time, by name, through the stored cell_start_index.
    for i in [0, len(cells) // 2, len(cells) - 1]:
        assert_same_matrix(data.get_submatrix([cells[i]], format="csr"), x[i])
    config = data.config
    assert config["format_version"] == "0.5"
    assert config["metadata"]["expression_count"] == x.nnz
    values = x.data.astype(np.float64)
    stats = config["metadata"]["expression_stats"]
    assert stats["max_value"] == pytest.approx(values.max())
    assert stats["mean_value"] == pytest.approx(values.mean())
    assert stats["std_value"] == pytest.approx(values.std(ddof=1))
    value_type = lance.dataset(converted[name] / "expression.lance").schema.field("value").type
    integral = np.array_equal(values, np.trunc(values)) and values.min() >= 0
    assert str(value_type) == ("uint16" if integral else "float")


@needs_shared
def test_h5ad_annotations_embeddings_pairwise_uns_and_raw(converted: dict[str, Path]) -> None:
    adata = ad.read_h5ad(REAL / "pbmc68k_reduced.h5ad")
    data = SLAFArray(converted["pbmc68k_reduced.h5ad"])
    for frame, ours in ((adata.obs, data.obs), (adata.var, data.var)):
        for column in frame.columns:
            expected = frame[column]
            got = ours[column.replace(".", "_")].to_list()
            if isinstance(expected.dtype, pd.CategoricalDtype):
                assert got == expected.astype(str).to_list()
            else:
                np.testing.assert_array_equal(np.asarray(got), expected.to_numpy())
    for key in adata.obsm:
        np.testing.assert_array_equal(data.obsm[key], adata.obsm[key].astype(np.float32))
    for key in adata.varm:
        np.testing.assert_array_equal(data.varm[key], adata.varm[key].astype(np.float32))
    for key in adata.obsp:
        assert_same_matrix(data.obsp[key], adata.obsp[key])
    expected_uns = _jsonable(dict(adata.uns))
    # uns.json holds every digit; the reader's JSON parser may differ in the last bit.
    assert json.loads((converted["pbmc68k_reduced.h5ad"] / "uns.json").read_text()) == expected_uns
    assert _close(data.uns, expected_uns)
    assert data.layer_names == ["raw"]
    assert_same_matrix(data.get_submatrix(layer="raw", format="csr"), adata.raw.X)
    assert_same_matrix(data.get_submatrix(slice(5, 9), layer="raw", format="csr"), adata.raw.X[5:9])


@needs_shared
def test_many_obs_columns_keep_their_values(converted: dict[str, Path]) -> None:
    adata = ad.read_h5ad(REAL / "cellxgene_small_perturbations.h5ad")
    obs = SLAFArray(converted["cellxgene_small_perturbations.h5ad"]).obs
    assert obs.columns[:2] == ["cell_id", "cell_integer_id"]
    assert len(obs.columns) == 2 + adata.obs.shape[1]
    for column in adata.obs.columns:
        expected = adata.obs[column]
        got = obs[column.replace(".", "_")].to_list()
        if isinstance(expected.dtype, pd.CategoricalDtype) or expected.dtype == object:
            assert got == [None if pd.isna(v) else str(v) for v in expected]
        else:
            np.testing.assert_array_equal(np.asarray(got), expected.to_numpy())


def _table_rows(path: Path, table: str) -> dict:
    return lance.dataset(path / f"{table}.lance").to_table().to_pydict()


@needs_shared
def test_10x_v3_mtx_and_h5_give_identical_datasets(converted: dict[str, Path]) -> None:
    a = converted["scanpy-10x-v3/filtered_feature_bc_matrix.h5"]
    b = converted["scanpy-10x-v3/filtered_feature_bc_matrix"]
    for table in ("expression", "cells", "genes"):
        assert (
            lance.dataset(a / f"{table}.lance").schema == lance.dataset(b / f"{table}.lance").schema
        )
        assert _table_rows(a, table) == _table_rows(b, table)
    config_a, config_b = (json.loads((p / "config.json").read_text()) for p in (a, b))
    config_a.pop("created_at")
    config_b.pop("created_at")
    assert config_a == config_b
    assert SLAFArray(a).var.columns == ["gene_id", "gene_integer_id", "gene_ids", "feature_types"]


@needs_shared
def test_multiple_genomes_are_side_by_side(converted: dict[str, Path]) -> None:
    var = SLAFArray(converted["scanpy-10x-v2/multiple_genomes.h5"]).var
    with h5py.File(REAL / "scanpy-10x-v2/multiple_genomes.h5") as f:
        genomes = [k for k in f if "indptr" in f[k]]
        sizes = [int(f[g]["shape"][0]) for g in genomes]
    assert var["genome"].to_list() == [
        g for g, n in zip(genomes, sizes, strict=True) for _ in range(n)
    ]


def _check_full(path: Path, adata: ad.AnnData) -> None:
    data = SLAFArray(path)
    assert data.shape == adata.shape
    assert_same_matrix(data.get_submatrix(format="csr"), adata.X)
    for layer in ("counts", "half"):
        assert_same_matrix(data.get_submatrix(layer=layer, format="csr"), adata.layers[layer])
    np.testing.assert_array_equal(data.obsm["X_umap"], adata.obsm["X_umap"])
    assert data.obs["cell_id"].to_list() == list(adata.obs_names)
    assert data.obs["cell_type"].to_list() == [
        None if pd.isna(v) else v for v in adata.obs["cell.type"]
    ]
    assert data.obs["count"].to_list() == [None if pd.isna(v) else v for v in adata.obs["count"]]
    assert data.obs["flag"].to_list() == [None if pd.isna(v) else v for v in adata.obs["flag"]]
    assert data.obs["label"].to_list() == [None if pd.isna(v) else v for v in adata.obs["label"]]
    # Cells of the second file, looked up by name and by id, through cell_start_index.
    assert_same_matrix(
        data.get_submatrix(["cell200", "cell121"], format="csr"), adata.X[[200, 121]]
    )
    assert_same_matrix(data.get_submatrix(250, format="csr"), adata.X[250])
    starts = lance.dataset(path / "cells.lance").to_table().to_pydict()["cell_start_index"]
    assert starts == list(np.concatenate([[0], np.cumsum(np.diff(_csr(adata.X).indptr))[:-1]]))
    value = lance.dataset(path / "expression.lance").schema.field("value").type
    assert str(value) == "float"  # one value above 65535 makes it float32


def test_single_file_with_layers_nullable_columns_and_values_above_uint16(
    halves, tmp_path: Path
) -> None:
    adata, _, _ = halves
    full = tmp_path / "full.h5ad"
    adata.write_h5ad(full)
    out = convert(full, tmp_path / "full.slaf", chunk_size=50, rows_per_fragment=1000)
    _check_full(Path(out), adata)
    assert len(lance.dataset(Path(out) / "expression.lance").get_fragments()) > 1


def test_csc_and_dense_x(halves, tmp_path: Path) -> None:
    adata, _, _ = halves
    for kind, x in (("csc", sp.csc_matrix(adata.X)), ("dense", adata.X.toarray())):
        other = ad.AnnData(X=x, obs=adata.obs[[]], var=adata.var)
        path = tmp_path / f"{kind}.h5ad"
        other.write_h5ad(path)
        data = SLAFArray(convert(path, tmp_path / f"{kind}.slaf", chunk_size=64))
        assert_same_matrix(data.get_submatrix(format="csr"), adata.X)


def test_csc_x_and_layers_are_regrouped_in_bounded_blocks(
    halves, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = sys.modules["slaf.convert"]
    # Blocks and row bands of ~50 entries: many column blocks, many bands, chunks across bands.
    monkeypatch.setattr(module, "_BAND_ENTRIES", 50)
    adata, _, _ = halves
    other = ad.AnnData(X=sp.csc_matrix(adata.X), obs=adata.obs[[]], var=adata.var)
    other.layers["counts"] = sp.csc_matrix(adata.layers["counts"])
    path = tmp_path / "in" / "csc.h5ad"
    path.parent.mkdir()
    other.write_h5ad(path)
    out = tmp_path / "out" / "csc.slaf"
    out.parent.mkdir()
    data = SLAFArray(convert(path, out, chunk_size=37))
    assert_same_matrix(data.get_submatrix(format="csr"), adata.X)
    assert_same_matrix(data.get_submatrix(layer="counts", format="csr"), adata.layers["counts"])
    assert_same_matrix(data.get_submatrix([299, 0, 150], format="csr"), adata.X[[299, 0, 150]])
    # The scratch copy next to the output is gone.
    assert sorted(p.name for p in out.parent.iterdir()) == ["csc.slaf"]


def _write_mtx(folder: Path, x: sp.spmatrix, rng: np.random.Generator, field: str) -> None:
    """A 10x-style folder with the entries of ``x.T`` (genes × cells) in shuffled order."""
    coo = sp.coo_matrix(x.T)
    order = rng.permutation(coo.nnz)
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wt") as f:
        f.write(f"%%MatrixMarket matrix coordinate {field} general\n% a comment\n")
        f.write(f"{coo.shape[0]} {coo.shape[1]} {coo.nnz}\n")
        for k in order:
            value = "" if field == "pattern" else f" {coo.data[k]:.17g}"
            f.write(f"{coo.row[k] + 1} {coo.col[k] + 1}{value}\n")
    n_genes, n_cells = coo.shape
    genes = "".join(f"ENSG{j}\tG{j}\tGene Expression\n" for j in range(n_genes))
    (folder / "features.tsv").write_text(genes)
    (folder / "barcodes.tsv").write_text("".join(f"c{i}\n" for i in range(n_cells)))


@pytest.mark.parametrize("field", ["integer", "real", "pattern"])
def test_mtx_lines_in_any_order_are_read_in_bounded_blocks(
    halves, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    module = sys.modules["slaf.convert"]
    monkeypatch.setattr(module, "_BAND_ENTRIES", 64)
    adata, _, _ = halves
    x = sp.csr_matrix(adata.X, copy=True)  # halves is shared: never modify its arrays
    if field == "real":
        x = x * 0.25
    elif field == "pattern":
        x.data[:] = 1
    x.eliminate_zeros()
    folder = tmp_path / "mtx"
    _write_mtx(folder, x, np.random.default_rng(3), field)
    data = SLAFArray(convert(folder, tmp_path / "mtx.slaf", chunk_size=41))
    assert_same_matrix(data.get_submatrix(format="csr"), x)
    value_type = lance.dataset(tmp_path / "mtx.slaf" / "expression.lance").schema.field("value")
    # Counts above 65535 (and quarters) are float32; the 0/1 pattern is uint16.
    assert str(value_type.type) == ("uint16" if field == "pattern" else "float")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mtx", "mtx.slaf"]


def test_source_dtypes_unsorted_rows_and_repeated_genes(tmp_path: Path) -> None:
    # Row 0: genes out of order with a repeat (summed, as scipy's sum_duplicates); row 1: an
    # explicit zero; row 2: empty; row 3: a repeated gene (float64: summing to zero, so gone).
    indptr = np.array([0, 4, 6, 6, 8], dtype=np.int64)
    indices = np.array([3, 1, 3, 0, 2, 4, 1, 1], dtype=np.int64)
    cases = {
        np.int32: ([1, 2, 3, 4, 0, 5, 7, 9], "uint16", [0, 0, 0, 1, 3], [4, 2, 4, 5, 16]),
        np.float64: ([1, 2, 3, 4, 0, 5.5, 7, -7], "float", [0, 0, 0, 1], [4, 2, 4, 5.5]),
        np.uint8: ([1, 2, 3, 4, 0, 5, 7, 0], "uint16", [0, 0, 0, 1, 3], [4, 2, 4, 5, 7]),
    }
    for dtype, (values, value_type, cells, stored) in cases.items():
        x = sp.csr_matrix((np.array(values, dtype=dtype), indices, indptr), shape=(4, 5))
        name = np.dtype(dtype).name
        path = tmp_path / f"{name}.h5ad"
        ad.AnnData(X=sp.csr_matrix((4, 5), dtype=np.float32)).write_h5ad(path)
        with h5py.File(path, "r+") as f:
            # The arrays as they are: unsorted, repeated, int64 indices (scipy would downcast).
            del f["X"]
            group = f.create_group("X")
            group.attrs.update(
                {"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (4, 5)}
            )
            group["indptr"], group["indices"] = indptr, indices
            group["data"] = np.array(values, dtype=dtype)
        out = Path(convert(path, tmp_path / f"{name}.slaf"))
        expected = x.copy()
        expected.sum_duplicates()
        assert_same_matrix(SLAFArray(out).get_submatrix(format="csr"), expected)
        table = lance.dataset(out / "expression.lance")
        rows = table.to_table().to_pydict()
        assert rows["cell_integer_id"] == cells
        assert rows["gene_integer_id"] == [0, 1, 3, 4, 1][: len(cells)]
        assert rows["value"] == stored
        assert str(table.schema.field("value").type) == value_type
        assert SLAFArray(out).config["metadata"]["expression_stats"]["max_value"] == max(stored)


def test_direct_hdf5_reads_match_h5py(tmp_path: Path) -> None:
    module = sys.modules["slaf.convert"]
    rng = np.random.default_rng(5)
    path = tmp_path / "arrays.h5"
    values = {
        "contiguous": rng.random(1000),
        "big_endian": rng.integers(0, 1000, 1000).astype(">i4"),
        "compressed": rng.random(1000),
    }
    with h5py.File(path, "w") as f:
        f["contiguous"] = values["contiguous"]
        f["big_endian"] = values["big_endian"]
        f.create_dataset("compressed", data=values["compressed"], chunks=(64,), compression="gzip")
        # Appended in turns, like anndata's CSR append: runs of chunks interleave in the file.
        for name in ("a", "b"):
            f.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(50,), dtype=np.float32)
        for _ in range(6):
            for name in ("a", "b"):
                block = rng.random(123).astype(np.float32)
                values[name] = np.concatenate([values.get(name, np.zeros(0, np.float32)), block])
                f[name].resize((len(values[name]),))
                f[name][-123:] = block
    with h5py.File(path, "r") as f:
        assert module._DirectReader.of(f["compressed"]) is None
        for name in ("contiguous", "big_endian", "a", "b"):
            reader = module._DirectReader.of(f[name])
            assert reader is not None, name
            if name in ("a", "b"):
                assert len(reader.run_start) > 1  # several runs of chunks
            try:
                for lo, hi in [(0, 1), (0, 738), (49, 51), (100, 600), (737, 738), (3, 3 + 49)]:
                    hi = min(hi, len(values[name]))
                    out = np.empty(hi - lo, dtype=f[name].dtype)
                    reader.read(lo, hi, out)
                    np.testing.assert_array_equal(out, values[name][lo:hi])
            finally:
                reader.close()


def test_a_late_non_integer_value_makes_the_dataset_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = sp.random(500, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 100)
    late = x.copy()
    late.data[-1] = 2.5  # in the last cell: seen after everything else was written as uint16
    names = pd.DataFrame(index=[f"g{j}" for j in range(30)])
    paths = []
    for name, m in (("ints", x), ("late", late)):
        paths.append(tmp_path / f"{name}.h5ad")
        ad.AnnData(X=m, var=names).write_h5ad(paths[-1])
    out = tmp_path / "out"
    out.mkdir()
    for inputs, value_type, expected in (
        ([paths[0]], "uint16", x),
        ([paths[1]], "float", late),
        (paths, "float", sp.vstack([x, late])),  # the second file decides
    ):
        target = out / f"{len(inputs)}{value_type}.slaf"
        data = SLAFArray(convert(inputs, target, chunk_size=64))
        assert_same_matrix(data.get_submatrix(format="csr"), expected)
        schema = lance.dataset(target / "expression.lance").schema
        assert str(schema.field("value").type) == value_type
        assert data.config["metadata"]["expression_stats"]["max_value"] == expected.data.max()
    assert sorted(p.name for p in out.iterdir()) == ["1float.slaf", "1uint16.slaf", "2float.slaf"]
    # Appending them to a uint16 dataset is refused, and leaves it as it was.
    with pytest.raises(InvalidArgumentError, match="uint16"):
        append(paths[1], out / "1uint16.slaf", chunk_size=64)
    assert SLAFArray(out / "1uint16.slaf").n_cells == 500
    assert len(lance.dataset(out / "1uint16.slaf" / "expression.lance").versions()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["1float.slaf", "1uint16.slaf", "2float.slaf"]


def test_multi_file_conversion(halves, tmp_path: Path) -> None:
    adata, a, b = halves
    out = Path(convert([a, b], tmp_path / "ab.slaf", chunk_size=33))
    _check_full(out, adata)
    files = SLAFArray(out).config["multi_file"]
    assert files["total_files"] == 2
    assert [f["cell_offset"] for f in files["source_files"]] == [0, 120]
    assert [f["n_cells"] for f in files["source_files"]] == [120, 180]


def test_append(halves, tmp_path: Path) -> None:
    adata, a, b = halves
    out = Path(convert(a, tmp_path / "a.slaf"))
    # An existing reader keeps working on the old files while we append.
    before = SLAFArray(out)
    assert append(b, out) == os.fspath(out)
    _check_full(out, adata)
    assert before.shape == (120, adata.n_vars)
    assert len(lance.dataset(out / "expression.lance").versions()) == 2
    files = SLAFArray(out).config["multi_file"]["source_files"]
    assert [f["cell_offset"] for f in files] == [0, 120]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_native_writer_checks_values_and_stops_after_a_failure(tmp_path: Path) -> None:
    import pyarrow as pa

    from slaf import _native

    writer = _native.NativeWriter.create(str(tmp_path / "w.slaf"), 2, 3, "uint16", [])
    writer.write_genes(pa.table({"gene_id": ["a", "b", "c"]}))
    obs = pa.table({"cell_id": ["x"]})
    indptr, genes = pa.array(np.array([0, 2])), pa.array(np.array([0, 2], dtype=np.int32))
    writer.write_cells(indptr, genes, pa.array(np.array([3, 4], dtype=np.int64)), obs, [])
    with pytest.raises(ValueError, match="uint16"):
        writer.write_cells(indptr, genes, pa.array(np.array([1.0, 1.5])), obs, [])
    with pytest.raises(ValueError, match="earlier write failed"):
        writer.write_cells(indptr, genes, pa.array(np.array([1, 2], dtype=np.uint16)), obs, [])
    with pytest.raises(ValueError, match="earlier write failed"):
        writer.finish()
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    assert _native.NativeWriter.fits_uint16(pa.array(np.array([0.0, 65535.0])))
    assert not _native.NativeWriter.fits_uint16(pa.array(np.array([-1], dtype=np.int8)))


def test_existing_output_is_not_overwritten_without_overwrite(halves, tmp_path: Path) -> None:
    _, a, b = halves
    out = Path(convert(a, tmp_path / "x.slaf"))
    with pytest.raises(InvalidArgumentError, match="already exists"):
        convert(b, out)
    assert SLAFArray(out).n_cells == 120
    convert(b, out, overwrite=True)
    assert SLAFArray(out).n_cells == 180
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.slaf"]


@pytest.fixture(scope="module")
def shuffled(halves, tmp_path_factory: pytest.TempPathFactory) -> Path:
    adata, _, _ = halves
    other = adata[:10, ::-1].copy()
    path = tmp_path_factory.mktemp("shuffled") / "reversed.h5ad"
    other.write_h5ad(path)
    return path


def test_gene_order_mismatch_is_a_clear_error(halves, shuffled: Path, tmp_path: Path) -> None:
    _, a, _ = halves
    with pytest.raises(InvalidArgumentError, match=r"gene order of .*reversed\.h5ad differs"):
        convert([a, shuffled], tmp_path / "bad.slaf")
    assert list(tmp_path.iterdir()) == []
    out = Path(convert(a, tmp_path / "a.slaf"))
    with pytest.raises(SLAFError, match=r"gene order of .*reversed\.h5ad differs"):
        append(shuffled, out)
    assert SLAFArray(out).n_cells == 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.slaf"]


@pytest.mark.parametrize("exception", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_conversion_leaves_nothing(
    halves, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exception: BaseException
) -> None:
    module = sys.modules["slaf.convert"]
    _, a, b = halves
    rows = module._CsrRows.rows
    calls = {"n": 0}

    def failing(self, start, stop):
        calls["n"] += 1
        if calls["n"] == 3:
            raise exception
        return rows(self, start, stop)

    monkeypatch.setattr(module._CsrRows, "rows", failing)
    with pytest.raises(type(exception)):
        convert(a, tmp_path / "broken.slaf", chunk_size=10)
    assert list(tmp_path.iterdir()) == []
    # A failed append leaves the dataset as it was.
    monkeypatch.setattr(module._CsrRows, "rows", rows)
    out = Path(convert(a, tmp_path / "a.slaf"))
    calls["n"] = 0
    monkeypatch.setattr(module._CsrRows, "rows", failing)
    with pytest.raises(type(exception)):
        append(b, out, chunk_size=10)
    assert SLAFArray(out).n_cells == 120
    assert len(lance.dataset(out / "expression.lance").versions()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.slaf"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SLAF_CLI, *args], capture_output=True, text=True, cwd=REPO)


def test_cli_convert_append_info(halves, tmp_path: Path) -> None:
    adata, a, b = halves
    out = tmp_path / "cli.slaf"
    done = _cli("convert", str(a), str(out), "--chunk-size", "50")
    assert done.returncode == 0, done.stderr
    done = _cli("append", str(b), str(out))
    assert done.returncode == 0, done.stderr
    _check_full(out, adata)
    done = _cli("info", str(out))
    assert done.returncode == 0
    assert "300 cells × 40 genes" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["convert", "{a}", "{out}"], "already exists"),
        (["convert", "{tmp}/missing.h5ad", "{tmp}/new.slaf"], "does not exist"),
        (["convert", "{a}", "{tmp}/new.slaf", "--chunk-size", "0"], "chunk_size"),
        (["convert", "{tmp}/notes.txt", "{tmp}/new.slaf"], "cannot tell the format"),
        (["convert", "{a}", "{tmp}/new.slaf", "--format", "10x_h5"], "cannot read"),
        (["convert", "{a}"], "at least one input"),
        (["append", "{shuffled}", "{out}"], "gene order"),
        (["append", "{a}", "{tmp}/nothing.slaf"], "no dataset"),
        (["info", "{tmp}/nothing.slaf"], "does not exist"),
        (["convert", "--format", "csv", "{a}", "{out}"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_errors_are_one_line(halves, shuffled, tmp_path: Path, args, message) -> None:
    _, a, _ = halves
    out = tmp_path / "out.slaf"
    convert(a, out)
    (tmp_path / "notes.txt").write_text("hi")
    fill = {"a": a, "out": out, "tmp": tmp_path, "shuffled": shuffled}
    done = _cli(*[arg.format(**fill) for arg in args])
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("slaf: error:")
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "new.slaf").exists()


def test_console_script_is_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'slaf = "slaf.cli:main"' in text
    assert slaf.convert is convert


SLAFDB_PYTHON = REPO / ".venv-slafdb" / "bin" / "python"

_SLAFDB_CHECK = """
import json, sys
import numpy as np
import slaf
from slaf import SLAFArray
path, names, out = sys.argv[1], sys.argv[2], sys.argv[3]
cell_names, gene_names = json.load(open(names))
n_cells, n_genes = len(cell_names), len(gene_names)
data = SLAFArray(path)
assert tuple(data.shape) == (n_cells, n_genes), data.shape
# slafdb returns long rows named by cell_id / gene_id.
frame = data.get_submatrix(slice(0, n_cells), slice(0, n_genes))
cell_pos = {c: i for i, c in enumerate(cell_names)}
gene_pos = {g: i for i, g in enumerate(gene_names)}
dense = np.zeros((n_cells, n_genes), dtype=np.float64)
cells = np.array([cell_pos[c] for c in frame["cell_id"].to_list()], dtype=np.int64)
genes = np.array([gene_pos[g] for g in frame["gene_id"].to_list()], dtype=np.int64)
dense[cells, genes] = frame["value"].to_numpy()
# A cell from the end of the dataset, alone (multi-file: from the second file).
last = data.get_submatrix(slice(n_cells - 1, n_cells), slice(0, n_genes))
assert set(last["cell_id"].to_list()) <= {cell_names[-1]}
assert last.height == int((dense[-1] != 0).sum()), (last.height, (dense[-1] != 0).sum())
np.save(out, dense)
"""


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("cellxgene_small_perturbations.h5ad", marks=needs_shared),
        pytest.param("pbmc68k_reduced.h5ad", marks=needs_shared),
        "multi",  # made in code: runs without the shared data too
    ],
)
def test_datasets_open_in_slafdb_with_the_same_values(
    request: pytest.FixtureRequest, halves, tmp_path: Path, name: str
) -> None:
    if not SLAFDB_PYTHON.exists():
        missing = f"slafdb 0.5.2 is not installed ({SLAFDB_PYTHON} is missing; bash .ci/setup)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI's set-up installs it: never skip there
        pytest.skip(missing)
    if name == "multi":
        adata, a, b = halves
        path = Path(convert([a, b], tmp_path / "ab.slaf"))
        x = _csr(adata.X).toarray()
    else:
        # Only the real inputs need `converted` (which converts every real file).
        path = request.getfixturevalue("converted")[name]
        x = _expected(name)[0].toarray()
    out = tmp_path / "dense.npy"
    names = tmp_path / "names.json"
    ours = SLAFArray(path)
    names.write_text(json.dumps([ours.obs["cell_id"].to_list(), ours.var["gene_id"].to_list()]))
    done = subprocess.run(
        [str(SLAFDB_PYTHON), "-c", _SLAFDB_CHECK, str(path), str(names), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_array_equal(np.load(out), x)
