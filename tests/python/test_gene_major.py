"""The gene-major companion and axis statistics: written by convert, added by ``slaf index``,
used by every gene-centric read with the same results, ignored once stale, and invisible to
slafdb and to obs/var."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import anndata as ad
import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp

from slaf import SLAFArray, _native
from slaf.cli import main
from slaf.convert import append, convert
from slaf.integrations import read_slaf
from slaf.polars import ScanStats, scan_slaf
from slaf.sql import EXTENSION

from conftest import FIXTURES, REPO, needs_fixtures, stand_in

SLAFDB_PYTHON = REPO / ".venv-slafdb" / "bin" / "python"


def _status(path: Path) -> str:
    return _native.NativeDataset(str(path)).gene_major_status()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ad.AnnData, Path, Path]:
    """One input converted with and without the gene-major companion; large enough (3000
    cells × 60 genes, 20 % dense) that the planner reads a few genes gene-major."""
    rng = np.random.default_rng(5)
    x = sp.random(3000, 60, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 50).astype(np.float32)
    x = sp.csr_matrix(x.multiply((np.arange(3000) % 7 != 0)[:, None]))  # empty cells
    x.eliminate_zeros()
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(
            {"group": rng.choice(["a", "b"], 3000)}, index=[f"c{i}" for i in range(3000)]
        ),
        var=pd.DataFrame(index=[f"G{j}" for j in range(60)]),
    )
    root = tmp_path_factory.mktemp("gene_major")
    adata.write_h5ad(root / "in.h5ad")
    indexed = Path(convert(root / "in.h5ad", root / "indexed.slaf"))
    plain = Path(convert(root / "in.h5ad", root / "plain.slaf", gene_index=False))
    return adata, indexed, plain


def test_convert_writes_the_companion_unless_told_not_to(pair) -> None:
    _, indexed, plain = pair
    assert _status(indexed) == "fresh"
    assert (indexed / "expression_by_gene.lance").is_dir()
    assert _status(plain) == "absent"
    assert not (plain / "expression_by_gene.lance").exists()
    config = json.loads((indexed / "config.json").read_text())
    assert config["tables"]["expression_by_gene"] == "expression_by_gene.lance"
    assert config["gene_major"]["expression_rows"] == SLAFArray(indexed)._native.nnz


def test_gene_centric_reads_agree_with_and_without_it(pair) -> None:
    adata, indexed, plain = pair
    genes = ["G3", "G17", "G29"]
    a, b = SLAFArray(indexed), SLAFArray(plain)
    assert a._native.layout_for(("all", None), ("names", genes)) == "gene-major"
    assert b._native.layout_for(("all", None), ("names", genes)) == "cell-major"
    # The cost model keeps single cells cell-major.
    assert a._native.layout_for(("ids", np.array([4], np.int64).tobytes()), ("names", genes)) == (
        "cell-major"
    )
    frame = a.get_gene_expression(genes)
    assert frame.equals(b.get_gene_expression(genes))
    x = sp.csr_matrix(adata.X)[:, [3, 17, 29]].tocoo()
    expected = sorted(
        zip(x.row.tolist(), (np.array([3, 17, 29])[x.col]).tolist(), x.data.tolist(), strict=True)
    )
    got = sorted(
        zip(
            *(frame[c].to_list() for c in ("cell_integer_id", "gene_integer_id", "value")),
            strict=True,
        )
    )
    assert got == expected
    # read_slaf's lazy view, gene-only slices.
    lazy_a, lazy_b = read_slaf(indexed), read_slaf(plain)
    np.testing.assert_array_equal(
        lazy_a[:, genes].X.compute().toarray(), lazy_b[:, genes].X.compute().toarray()
    )
    np.testing.assert_array_equal(
        lazy_a[:, genes].X.compute().toarray(), sp.csr_matrix(adata.X)[:, [3, 17, 29]].toarray()
    )


def test_sql_and_polars_gene_predicates_agree_with_and_without_it(pair) -> None:
    _, indexed, plain = pair
    query = (
        "SELECT cell_integer_id, gene_integer_id, value FROM expression "
        "WHERE gene_integer_id IN (2, 11, 30) ORDER BY gene_integer_id, cell_integer_id"
    )
    assert SLAFArray(indexed).query(query).equals(SLAFArray(plain).query(query))
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{EXTENSION}'")
    sliced = [
        con.execute(
            f"SELECT * FROM slaf_slice('{p}', genes := [5, 9]) "
            "ORDER BY cell_integer_id, gene_integer_id"
        ).fetchall()
        for p in (indexed, plain)
    ]
    assert sliced[0] == sliced[1] and sliced[0]
    info = con.execute(f"SELECT gene_major FROM slaf_info('{indexed}')").fetchone()
    assert info == ("fresh",)
    scanned, selected = [], []
    for p in (indexed, plain):
        stats = ScanStats()
        frame = (
            scan_slaf(p, stats=stats)
            .filter(pl.col("gene_integer_id").is_in([1, 8]) & (pl.col("cell_integer_id") > 100))
            .sort("gene_integer_id", "cell_integer_id")
            .collect()
        )
        scanned.append(frame)
        selected.append(stats.genes_selected)
    assert scanned[0].equals(scanned[1]) and scanned[0].height > 0
    assert scanned[0].schema == scanned[1].schema
    # Only these genes' rows were read with the gene-major table; a filtered scan without it.
    assert selected == [2, None]


def test_statistics_match_the_matrix_and_stay_out_of_obs_and_var(pair) -> None:
    adata, indexed, plain = pair
    x = sp.csr_matrix(adata.X).astype(np.float64)
    native = SLAFArray(indexed)._native
    cells = pl.DataFrame(native.axis_stats("cells"))
    genes = pl.DataFrame(native.axis_stats("genes"))
    np.testing.assert_array_equal(cells["slaf_total_counts"], np.asarray(x.sum(axis=1)).ravel())
    np.testing.assert_array_equal(cells["slaf_n_genes_by_counts"], np.diff(x.indptr))
    np.testing.assert_array_equal(genes["slaf_total_counts"], np.asarray(x.sum(axis=0)).ravel())
    np.testing.assert_array_equal(genes["slaf_n_cells_by_counts"], np.diff(x.tocsc().indptr))
    np.testing.assert_allclose(genes["slaf_mean"], np.asarray(x.mean(axis=0)).ravel())
    np.testing.assert_allclose(
        genes["slaf_sum_squares"], np.asarray(x.multiply(x).sum(axis=0)).ravel()
    )
    assert SLAFArray(plain)._native.axis_stats("cells") is None
    with pytest.raises(ValueError, match="axis must be"):
        native.axis_stats("rows")
    a, b = SLAFArray(indexed), SLAFArray(plain)
    assert a.obs.columns == b.obs.columns and a.var.columns == b.var.columns
    # SQL shows the stored tables as they are (as slafdb does): the statistics are queryable.
    query = "SELECT * FROM cells LIMIT 1"
    extra = set(a.query(query).columns) - set(b.query(query).columns)
    assert extra == {"slaf_total_counts", "slaf_n_genes_by_counts"}
    big = a.query("SELECT COUNT(*) AS n FROM cells WHERE slaf_total_counts > 300")["n"][0]
    assert big == int((np.asarray(x.sum(axis=1)).ravel() > 300).sum()) > 0
    assert list(read_slaf(indexed).obs.columns) == list(read_slaf(plain).obs.columns)


def test_append_rebuilds_or_leaves_it_stale_and_index_refreshes_it(halves, tmp_path: Path) -> None:
    adata, a, b = halves
    path = Path(convert(a, tmp_path / "grow.slaf"))
    append(b, path, gene_index=False)
    assert _status(path) == "stale"
    genes = ["G1", "G2"]
    data = SLAFArray(path)
    assert data._native.layout_for(("all", None), ("names", genes)) == "cell-major"
    stale_read = data.get_gene_expression(genes)
    assert stale_read.height == int((sp.csr_matrix(adata.X)[:, [1, 2]] != 0).sum())
    assert main(["index", str(path)]) == 0
    assert _status(path) == "fresh"
    assert SLAFArray(path).get_gene_expression(genes).equals(stale_read)


def test_cli_flags(halves, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, a, b = halves
    out = tmp_path / "cli.slaf"
    assert main(["convert", "--no-gene-index", "--quiet", str(a), str(out)]) == 0
    assert _status(out) == "absent"
    assert main(["append", "--quiet", str(b), str(out)]) == 0
    assert _status(out) == "fresh"  # an append builds it by default
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "gene-major table: fresh" in capsys.readouterr().out
    assert main(["index", "--drop", str(out)]) == 2
    assert "--drop needs --vectors" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing.slaf")]) == 1
    assert "slaf: error:" in capsys.readouterr().err


_SLAFDB_READ = """
import json, os, sys
import numpy as np
from slaf import SLAFArray
data = SLAFArray(sys.argv[1])
frame = data.get_submatrix(slice(0, data.shape[0]), slice(0, data.shape[1]))
json.dump({"shape": list(data.shape), "total": float(frame["value"].sum()),
           "rows": frame.height, "obs": list(data.obs.columns)}, open(sys.argv[2], "w"))
sys.stdout.flush()
os._exit(0)
"""


@needs_fixtures
def test_slaf_index_on_a_slafdb_dataset_keeps_it_readable_by_slafdb(tmp_path: Path) -> None:
    merfish = FIXTURES / stand_in("mouse_merfish_chunked.slaf")
    copy = tmp_path / "merfish.slaf"
    shutil.copytree(merfish, copy)
    before = SLAFArray(copy)
    genes = before.var["gene_id"].to_list()[:5]
    expected = before.get_gene_expression(genes)
    assert main(["index", str(copy)]) == 0
    after = SLAFArray(copy)
    assert _status(copy) == "fresh"
    assert after._native.layout_for(("all", None), ("names", genes)) == "gene-major"
    assert after.get_gene_expression(genes).equals(expected)
    assert after.obs.columns == before.obs.columns
    if not SLAFDB_PYTHON.exists():
        missing = f"slafdb 0.5.2 is not installed ({SLAFDB_PYTHON} is missing; bash .ci/setup)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    reports = []
    for path in (merfish, copy):
        out = tmp_path / f"{path.name}-{len(reports)}.json"
        done = subprocess.run(
            [str(SLAFDB_PYTHON), "-c", _SLAFDB_READ, str(path), str(out)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        reports.append(json.loads(out.read_text()))
    original, indexed = reports
    assert indexed["shape"] == original["shape"]
    assert indexed["rows"] == original["rows"]
    assert indexed["total"] == pytest.approx(original["total"])
    # slafdb shows the stored cells table as obs: the statistics appear there, after its columns.
    assert indexed["obs"] == [*original["obs"], "slaf_total_counts", "slaf_n_genes_by_counts"]


@pytest.mark.parametrize(
    ("function", "option"),
    [
        ("filter_cells", {"min_counts": 281}),
        ("filter_cells", {"min_genes": 12}),
        ("filter_genes", {"min_counts": 13103}),
        ("filter_genes", {"max_cells": 511}),
    ],
)
def test_filters_use_the_stored_statistics_with_scanpy_results(
    pair, function: str, option: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scanpy as sc

    import slaf.pp
    from slaf.pp import filters

    adata, indexed, plain = pair
    want_keep, want_number = getattr(sc.pp, function)(adata.X.copy(), **option)
    streamed = getattr(slaf.pp, function)(read_slaf(plain), **option, inplace=False)

    def no_streaming(*_args: object) -> None:
        raise AssertionError("streamed X although the statistics are stored")

    monkeypatch.setattr(filters, "_streamed", no_streaming)
    keep, number = getattr(slaf.pp, function)(read_slaf(indexed), **option, inplace=False)
    np.testing.assert_array_equal(keep, want_keep)
    np.testing.assert_array_equal(number, want_number)
    assert number.dtype == want_number.dtype
    np.testing.assert_array_equal(number, streamed[1])
    assert 0 < keep.sum() < keep.size
    # A view (or a transformed X) is not what the statistics describe: it streams.
    with pytest.raises(AssertionError, match="streamed X"):
        getattr(slaf.pp, function)(read_slaf(indexed)[:100], **option, inplace=False)


def test_qc_metrics_without_top_shares_come_from_the_statistics(
    pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scanpy as sc

    import slaf.pp
    from slaf.pp import qc

    adata, indexed, plain = pair
    mem = adata.copy()
    mem.var["low"] = np.arange(mem.n_vars) < 5
    want_obs, want_var = sc.pp.calculate_qc_metrics(mem, qc_vars=["low"], percent_top=None)
    lazy_plain = read_slaf(plain)
    lazy_plain.var["low"] = mem.var["low"].to_numpy()
    streamed = slaf.pp.calculate_qc_metrics(lazy_plain, qc_vars=["low"], percent_top=None)

    def no_streaming(*_args: object) -> None:
        raise AssertionError("streamed X although the statistics are stored")

    monkeypatch.setattr(qc, "_streamed", no_streaming)
    lazy = read_slaf(indexed)
    lazy.var["low"] = mem.var["low"].to_numpy()
    got_obs, got_var = slaf.pp.calculate_qc_metrics(lazy, qc_vars=["low"], percent_top=None)
    for got, want, other in [(got_obs, want_obs, streamed[0]), (got_var, want_var, streamed[1])]:
        assert list(got.columns) == list(want.columns)
        for column in want.columns:
            np.testing.assert_allclose(got[column], want[column], rtol=1e-6, err_msg=column)
            np.testing.assert_array_equal(got[column], other[column], err_msg=column)
    # With the top-gene shares (scanpy's default) a pass over X is needed.
    with pytest.raises(AssertionError, match="streamed X"):
        slaf.pp.calculate_qc_metrics(lazy, percent_top=(5,))


def test_every_slafdb_fixture_reads_the_same_once_indexed(
    fixture_name: str, tmp_path: Path
) -> None:
    copy = tmp_path / fixture_name
    shutil.copytree(FIXTURES / fixture_name, copy)
    before = SLAFArray(copy)
    n_cells, n_genes = before.shape
    rng = np.random.default_rng(1)
    selections = [
        (None, sorted(rng.choice(n_genes, k, replace=False).tolist())) for k in (1, 5, 40)
    ]
    selections.append(
        (
            sorted(rng.choice(n_cells, 50, replace=False).tolist()),
            sorted(rng.choice(n_genes, 30, replace=False).tolist()),
        )
    )
    expected = [before.get_submatrix(c, g, format="csr") for c, g in selections]
    assert main(["index", str(copy)]) == 0
    after = SLAFArray(copy)
    layouts = set()
    for (cells, genes), want in zip(selections, expected, strict=True):
        cell_selector = (
            ("all", None) if cells is None else ("ids", np.array(cells, np.int64).tobytes())
        )
        layouts.add(
            after._native.layout_for(cell_selector, ("ids", np.array(genes, np.int64).tobytes()))
        )
        got = after.get_submatrix(cells, genes, format="csr")
        assert got.dtype == want.dtype and (got != want).nnz == 0
    assert "gene-major" in layouts


def test_bad_inputs_are_named_errors_and_change_nothing(pair, tmp_path: Path, capsys) -> None:
    import lance

    from slaf.errors import CorruptDatasetError

    _, indexed, _ = pair
    # Not a dataset, or on object storage: one line, exit 1, nothing written.
    (tmp_path / "plain").mkdir()
    assert main(["index", str(tmp_path / "plain")]) == 1
    assert main(["index", "s3://bucket/x.slaf"]) == 1
    err = capsys.readouterr().err
    assert "is not a SLAF dataset" in err and "local directories only" in err
    assert list((tmp_path / "plain").iterdir()) == []
    with pytest.raises(ValueError, match="not both"):
        _native.NativeScan(
            SLAFArray(indexed)._native, "expression", None, None, None, ("all", None), ("all", None)
        )
    # A marker that does not describe the expression table: stale, so read cell-major.
    copy = tmp_path / "copy.slaf"
    shutil.copytree(indexed, copy)
    expected = SLAFArray(copy).get_gene_expression(["G1"])
    config = json.loads((copy / "config.json").read_text())
    config["gene_major"]["expression_rows"] -= 1
    (copy / "config.json").write_text(json.dumps(config))
    assert _status(copy) == "stale"
    assert SLAFArray(copy).get_gene_expression(["G1"]).equals(expected)
    # A fresh marker over a companion that lost a row: a named error, never a wrong answer.
    config["gene_major"]["expression_rows"] += 1
    (copy / "config.json").write_text(json.dumps(config))
    table = copy / "expression_by_gene.lance"
    rows = lance.dataset(str(table)).to_table()
    shutil.rmtree(table)
    for _ in range(config["table_versions"]["expression_by_gene"]):  # the same version number
        lance.write_dataset(rows.slice(1), str(table), mode="overwrite")
    assert _status(copy) == "fresh"
    with pytest.raises(CorruptDatasetError, match=r"expression_by_gene.*rows"):
        SLAFArray(copy).get_gene_expression(["G1"])
