"""Limits and validation (issue 17): oversized arguments, malformed selectors and filters, NULL
arguments and damaged datasets give named errors, and the host process (Python, DuckDB) lives.

Cases that used to abort the process run in a subprocess, so a regression fails the test
instead of killing the test run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import lance
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import slaf
import slaf.polars as sp
from slaf import SLAFArray

from conftest import REPO

REPOSITORY = REPO / "build" / "repository"
N_CELLS = 500


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter (so an abort cannot take the test run with it)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO / "tests" / "python",
    )


def assert_survives(code: str, *expected: str) -> None:
    """``code`` prints what it caught: the process must exit normally and name each of
    ``expected``."""
    out = run_python(code)
    assert out.returncode == 0, f"rc {out.returncode}\n{out.stdout}\n{out.stderr[-3000:]}"
    for text in expected:
        assert text in out.stdout, f"{text!r} not in {out.stdout!r}"


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    built = REPOSITORY / "v2.0.0" / "linux_amd64" / "slaf.duckdb_extension"
    if not built.exists():
        pytest.fail(f"{built} is missing: run .ci/build-extension first")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{built}'")  # by path: no copy of the extension per test
    return con


# Loaded by path: an INSTALL per subprocess would copy the extension (hundreds of MB in a
# debug build) into a fresh folder each time.
DUCKDB_PRELUDE = f"""
import duckdb, sys
con = duckdb.connect(config={{"allow_unsigned_extensions": "true"}})
con.execute("LOAD '{REPOSITORY / "v2.0.0" / "linux_amd64" / "slaf.duckdb_extension"}'")
"""


# --- resource limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("tokenizer := 'geneformer', max_genes := 1000000000", "max_genes is 1000000000"),
        ("tokenizer := 'scgpt', n_bins := 2000000000", "n_bins is 2000000000"),
        ("tokenizer := 'scgpt', max_genes := 1000000000", "max_genes is 1000000000"),
        ("tokenizer := 'geneformer', vocab_size := 9223372036854775807", "vocab_size is"),
    ],
)
def test_duckdb_tokenize_sizes_are_errors(small_dataset: Path, args: str, expected: str) -> None:
    assert_survives(
        DUCKDB_PRELUDE
        + f"""
try:
    con.execute("SELECT count(*) FROM slaf_tokenize('{small_dataset}', {args})").fetchall()
    print("no error")
except duckdb.Error as e:
    print(type(e).__name__, e)
print(con.execute("SELECT 41 + 1").fetchone()[0])
""",
        "resource limit exceeded",
        expected,
        "42",
    )


def test_polars_tokenizer_sizes_are_errors() -> None:
    with pytest.raises(slaf.ResourceLimitError, match="max_genes is 1000000000") as info:
        sp.geneformer(max_genes=10**9)
    assert isinstance(info.value, MemoryError)
    with pytest.raises(slaf.ResourceLimitError, match="n_bins is 2000000000"):
        sp.scgpt(n_bins=2_000_000_000)
    with pytest.raises(slaf.ResourceLimitError, match="max_len is"):
        sp.scgpt(max_len=10**12)
    with pytest.raises(slaf.InvalidArgumentError, match="max_genes is 0"):
        sp.geneformer(max_genes=0)
    for kwargs, name in [
        ({"max_genes": -1}, "max_genes"),
        ({"max_genes": 2.5}, "max_genes"),
        ({"vocab_size": "big"}, "vocab_size"),
        ({"pad": "yes"}, "pad"),
        ({"target_sum": "x"}, "target_sum"),
    ]:
        with pytest.raises((TypeError, slaf.InvalidArgumentError), match=name):
            sp.geneformer(**kwargs)


def test_polars_geneformer_huge_max_genes_keeps_python_alive() -> None:
    """The plugin's own check (the Python one bypassed) fails instead of aborting."""
    assert_survives(
        """
        import polars as pl
        from slaf import polars as sp
        frame = pl.DataFrame({"gene_ids": [[0, 1, 2]], "values": [[1.0, 2.0, 3.0]]})
        sp._check_tokenize_kwargs = lambda names, kwargs: None
        try:
            frame.select(sp.geneformer(max_genes=10**9, pad=True)).to_series().to_list()
            print("no error")
        except Exception as e:
            print(type(e).__name__, e)
        print("alive")
        """,
        "max_genes is 1000000000",
        "alive",
    )


def test_polars_tokenizer_still_works() -> None:
    frame = pl.DataFrame({"gene_ids": [[0, 1, 2]], "values": [[1.0, 5.0, 3.0]]})
    tokens = frame.select(sp.geneformer(max_genes=2, n_genes=3)).to_series().to_list()
    assert tokens == [[5, 6]]


# --- selectors ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(small_dataset: Path) -> SLAFArray:
    return SLAFArray(small_dataset)


@pytest.mark.parametrize("value", [2**64 - 1, 2**63, 2**70, -(2**63) - 1])
def test_ids_beyond_int64_name_the_value(data: SLAFArray, value: int) -> None:
    for selector in (value, [value], [0, value], np.array([value]) if value < 2**64 else None):
        if selector is None:
            continue
        with pytest.raises(slaf.SelectionIndexError, match=f"cell index {value} is out of range"):
            data.get_submatrix(selector, format="csr")
        with pytest.raises(IndexError, match=str(value)):
            data.get_cell_expression(selector)


def test_ids_at_int64_bounds_are_out_of_range(data: SLAFArray) -> None:
    with pytest.raises(slaf.SelectionIndexError, match=f"cell index {2**63 - 1} is out"):
        data.get_submatrix([2**63 - 1], format="csr")
    with pytest.raises(slaf.SelectionIndexError, match="cell index 500 is out of range"):
        data.get_submatrix(np.array([3, 500], dtype=np.uint64), format="csr")
    assert data.get_submatrix(np.array([N_CELLS - 1], dtype=np.uint64), format="csr").shape == (
        1,
        300,
    )


@pytest.mark.parametrize(
    ("selector", "shown"),
    [
        (b"abc", "b'abc'"),
        (bytearray(b"ab"), "bytearray"),
        (1.0, "1.0"),
        ([1.5], "1.5"),
        ([0, 2.0], "2.0"),
        ([b"a"], "b'a'"),
        (np.array([1.0, 2.0]), "1.0"),
        ([None], "None"),
        ([[0, 1]], "[0, 1]"),
    ],
)
def test_non_id_values_are_type_errors(data: SLAFArray, selector: object, shown: str) -> None:
    with pytest.raises(TypeError, match=shown.replace("[", r"\[").replace("(", r"\(")):
        data.get_submatrix(selector, format="csr")
    with pytest.raises(TypeError):
        data.get_cell_expression(selector)


def test_mixed_ids_and_names_are_one_error(data: SLAFArray) -> None:
    name = data.obs["cell_id"][3]
    with pytest.raises(TypeError, match=f"mixes kinds \\(int 0 and name '{name}'\\)"):
        data.get_submatrix([0, name], format="csr")
    with pytest.raises(TypeError, match="mixes kinds"):
        data.get_submatrix([True, 1], format="csr")


def test_valid_selectors_still_select(data: SLAFArray) -> None:
    full = data.get_submatrix(None, format="csr")
    name = data.obs["cell_id"][3]
    np.testing.assert_array_equal(
        data.get_submatrix([name, name], format="csr").toarray(), full[[3, 3]].toarray()
    )
    np.testing.assert_array_equal(
        data.get_submatrix(np.array([name], dtype=object), format="csr").toarray(),
        full[[3]].toarray(),
    )
    np.testing.assert_array_equal(
        data.get_submatrix((4, -1), format="csr").toarray(), full[[4, 499]].toarray()
    )
    mask = [i % 2 == 0 for i in range(N_CELLS)]
    assert data.get_submatrix(mask, format="csr").shape == (250, 300)
    # Slice bounds beyond int64 clip as Python's do.
    assert data.get_submatrix(slice(-(2**70), 2**70, 2**80), format="csr").shape == (1, 300)
    assert data.get_submatrix(slice(None, None, -(2**70)), format="csr").shape == (1, 300)


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter_text",
    ["cell_integer_id < 3; garbage", "1=1; DROP TABLE x", "cell_integer_id < 3 LIMIT 1"],
)
def test_filters_are_one_expression(small_dataset: Path, tmp_path: Path, filter_text: str) -> None:
    con = duckdb_connection()
    quoted = filter_text.replace("'", "''")
    with pytest.raises(duckdb.Error, match="a filter is one expression"):
        con.execute(f"SELECT * FROM slaf_scan('{small_dataset}', 'cells', filter := '{quoted}')")
    with pytest.raises(duckdb.Error, match="a filter is one expression"):
        con.execute(f"SELECT * FROM slaf_slice('{small_dataset}', cell_filter := '{quoted}')")
    with pytest.raises(slaf.InvalidArgumentError, match="a filter is one expression"):
        sp.scan_slaf(small_dataset, "cells_x", cell_filter=filter_text).collect()
    trailing = "filter := 'cell_integer_id < 3;'"
    count = f"SELECT count(*) FROM slaf_scan('{small_dataset}', 'cells', {trailing})"
    assert con.execute(count).fetchone() == (3,)


def test_filter_operator_count_is_capped(small_dataset: Path, tmp_path: Path) -> None:
    chain = " OR ".join(["cell_integer_id = 1"] * 5000)
    con = duckdb_connection()
    with pytest.raises(duckdb.Error, match="resource limit exceeded: filter"):
        con.execute(f"SELECT * FROM slaf_scan('{small_dataset}', 'cells', filter := '{chain}')")
    assert con.execute("SELECT 1").fetchone() == (1,)


# --- NULL arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        ("slaf_slice('{p}', cells := getvariable('typo'))", "cells"),
        ("slaf_slice('{p}', genes := NULL)", "genes"),
        ("slaf_slice('{p}', cell_filter := NULL)", "cell_filter"),
        ("slaf_slice('{p}', layer := NULL)", "layer"),
        ("slaf_scan('{p}', 'cells', filter := NULL)", "filter"),
        ("slaf_scan('{p}', 'cells', columns := NULL)", "columns"),
        ("slaf_tokenize('{p}', max_genes := NULL)", "max_genes"),
        ("slaf_tokenize('{p}', tokenizer := NULL)", "tokenizer"),
        ("slaf_tokenize('{p}', cells := getvariable('typo'))", "cells"),
        ("slaf_slice('{p}', cells := [1, NULL])", "cells"),
    ],
)
def test_null_arguments_are_errors(
    small_dataset: Path, tmp_path: Path, call: str, parameter: str
) -> None:
    con = duckdb_connection()
    with pytest.raises(duckdb.Error, match=f"{parameter} := "):
        con.execute(f"SELECT count(*) FROM {call.format(p=small_dataset)}").fetchall()


# --- integrity -------------------------------------------------------------------------------


def test_lost_manifest_is_a_corrupt_dataset(small_dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "rolled_back.slaf"
    shutil.copytree(small_dataset, path)
    expression = path / "expression.lance"
    table = lance.dataset(str(expression)).to_table()
    extra = table.slice(0, 10)
    lance.write_dataset(extra, str(expression), mode="append")
    config = json.loads((path / "config.json").read_text())
    config["metadata"]["expression_count"] = table.num_rows + 10
    (path / "config.json").write_text(json.dumps(config))
    assert SLAFArray(path).nnz == table.num_rows + 10
    newest = max((expression / "_versions").glob("*.manifest"), key=lambda p: p.stat().st_mtime)
    newest.unlink()
    with pytest.raises(slaf.CorruptDatasetError, match="dataset is corrupt") as info:
        SLAFArray(path)
    assert isinstance(info.value, ValueError)
    assert f"records {table.num_rows + 10}" in str(info.value)


def test_gene_stored_twice_is_corrupt(small_dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "duplicate.slaf"
    shutil.copytree(small_dataset, path)
    expression = path / "expression.lance"
    table = lance.dataset(str(expression)).to_table()
    cells = table.column("cell_integer_id").to_numpy()
    genes = table.column("gene_integer_id").to_numpy().copy()
    first = int(np.flatnonzero(cells == 0)[1])
    genes[first] = genes[first - 1]
    column = table.schema.get_field_index("gene_integer_id")
    damaged = table.set_column(
        column, table.schema.field(column), pa.array(genes, table.column(column).type)
    )
    lance.write_dataset(damaged, str(expression), mode="overwrite")
    data = SLAFArray(path)
    with pytest.raises(slaf.CorruptDatasetError, match="table 'expression' stores gene_integer_id"):
        data.get_submatrix([0], format="csr")
    assert data.get_submatrix([1], format="csr").shape == (1, 300)


def test_storage_errors_hide_build_paths(small_dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "no_versions.slaf"
    shutil.copytree(small_dataset, path)
    shutil.rmtree(path / "cells.lance" / "_versions")
    with pytest.raises(slaf.SLAFError) as info:
        SLAFArray(path)
    assert ".cargo" not in str(info.value)
    assert ".rs:" not in str(info.value)
