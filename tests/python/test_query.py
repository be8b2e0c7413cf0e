"""``SLAFArray.query`` (DuckDB with the SLAF extension, slafdb's dialect, pushdown) and
``filter_cells`` / ``filter_genes``.

The reference for every query is DuckDB over the same tables materialised in memory, read
independently with pylance.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import duckdb
import lance
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import slaf
import slaf.sql
from slaf import SLAFArray
from slaf.errors import ExtensionNotFoundError, InvalidArgumentError, QueryError

from conftest import FIXTURES, needs_fixtures, source, stand_in

#: The query from the front page of slafdb's docs, verbatim (double-quoted strings included).
SEED = """
    SELECT cell_type, AVG(total_counts) AS avg_counts
    FROM cells
    WHERE batch = "batch1"
      AND cell_type IN ("T cells", "B cells")
    GROUP BY cell_type
    ORDER BY avg_counts DESC
"""
SEED_STANDARD = SEED.replace('"', "'")
CELL_TYPES = ["T cells", "B cells", "NK cells", "Monocytes"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cellxgene_small_perturbations (500 cells x 2000 genes, real counts; without the shared
    data its generated stand-in) with ``batch`` and ``cell_type`` obs columns added and a
    ``spliced`` layer, converted to SLAF."""
    adata = source(stand_in("perturb500_chunked.slaf")).copy()
    n = adata.n_obs
    adata.obs["batch"] = [f"batch{i % 3 + 1}" for i in range(n)]
    adata.obs["cell_type"] = [CELL_TYPES[(i * 7) % 4] for i in range(n)]
    spliced = adata.X.copy()
    spliced.data = np.floor(spliced.data / 2).astype(np.float32)
    spliced.eliminate_zeros()
    adata.layers["spliced"] = spliced
    folder = tmp_path_factory.mktemp("query")
    adata.write_h5ad(folder / "seeded.h5ad")
    out = folder / "seeded.slaf"
    slaf.convert(folder / "seeded.h5ad", out)
    return out


def reference(dataset: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with the dataset's tables read by pylance and held in memory."""
    con = duckdb.connect()
    tables = json.loads((dataset / "config.json").read_text())["tables"]
    for name in ("cells", "genes", "expression", "layers"):
        if name in tables:
            arrow = lance.dataset(str(dataset / tables[name])).to_table()  # noqa: F841
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM arrow")
    return con


def run(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    """``query``'s result in the reference database."""
    return con.sql(query).pl()


@pytest.fixture(scope="module")
def ref(seeded: Path) -> duckdb.DuckDBPyConnection:
    return reference(seeded)


@pytest.fixture(scope="module")
def data(seeded: Path) -> SLAFArray:
    return SLAFArray(seeded)


def same(got: pl.DataFrame, want: pl.DataFrame, ordered: bool = False) -> None:
    assert got.columns == want.columns
    assert_frame_equal(
        got, want, check_row_order=ordered, check_dtypes=True, rel_tol=1e-9, abs_tol=1e-9
    )


# --- the seed query -----------------------------------------------------------------------


@needs_fixtures
def test_seed_query_runs_unchanged(data: SLAFArray, ref: duckdb.DuckDBPyConnection) -> None:
    got = data.query(SEED)
    want = run(ref, SEED_STANDARD)
    same(got, want, ordered=True)
    assert set(got["cell_type"]) == {"T cells", "B cells"}
    obs = data.obs.filter(
        (pl.col("batch") == "batch1") & pl.col("cell_type").is_in(["T cells", "B cells"])
    )
    for row in got.iter_rows(named=True):
        mean = obs.filter(pl.col("cell_type") == row["cell_type"])["total_counts"].mean()
        assert row["avg_counts"] == pytest.approx(mean, rel=1e-6)
    plan = data.explain_query(SEED)
    assert sorted(plan.literals) == ["B cells", "T cells", "batch1"]


@needs_fixtures
def test_double_quoted_columns_still_win(data: SLAFArray, ref: duckdb.DuckDBPyConnection) -> None:
    got = data.query('SELECT "cell_type", COUNT(*) AS n FROM cells GROUP BY "cell_type"')
    want = run(ref, "SELECT cell_type, COUNT(*) AS n FROM cells GROUP BY cell_type")
    same(got, want)
    assert data.explain_query('SELECT "batch" FROM cells').literals == []


# --- a corpus of queries, each equal to DuckDB over the materialised tables -------------------

#: (query, the same query in standard SQL when it uses slafdb's double-quoted strings)
CORPUS: list[tuple[str, str | None]] = [
    (SEED, SEED_STANDARD),
    ("SELECT COUNT(*) AS n FROM cells", None),
    ("SELECT * FROM genes WHERE gene_integer_id < 10", None),
    (
        "SELECT cell_id, total_counts FROM cells WHERE total_counts > 5000 AND batch = 'batch2'",
        None,
    ),
    ("SELECT cell_type, COUNT(*) AS n, AVG(total_counts) AS a FROM cells GROUP BY cell_type", None),
    ("SELECT * FROM expression WHERE cell_integer_id = 7", None),
    ("SELECT * FROM expression WHERE cell_integer_id IN (3, 99, 250, 100000, -1)", None),
    (
        "SELECT cell_integer_id, SUM(value) AS s, COUNT(*) AS n FROM expression "
        "WHERE cell_integer_id BETWEEN 10 AND 30 GROUP BY cell_integer_id",
        None,
    ),
    ("SELECT COUNT(*) AS n, SUM(value) AS s FROM expression WHERE cell_integer_id >= 480", None),
    ("SELECT * FROM expression WHERE cell_integer_id < 5 AND gene_integer_id < 100", None),
    (
        "SELECT gene_integer_id, COUNT(*) AS n FROM expression "
        "WHERE gene_integer_id IN (0, 5, 17) GROUP BY 1",
        None,
    ),
    (
        "SELECT c.cell_type, COUNT(*) AS nnz, SUM(e.value) AS total FROM expression e "
        "JOIN cells c ON e.cell_integer_id = c.cell_integer_id "
        "WHERE c.cell_type = 'B cells' AND c.batch IN ('batch1', 'batch3') GROUP BY c.cell_type",
        None,
    ),
    (
        "SELECT g.feature_name, AVG(e.value) AS mean FROM expression e "
        "JOIN genes g ON e.gene_integer_id = g.gene_integer_id "
        "WHERE g.feature_name LIKE 'RP%' GROUP BY g.feature_name",
        None,
    ),
    (
        "SELECT c.batch, g.feature_name, MAX(e.value) AS top FROM cells c "
        "JOIN expression e ON c.cell_integer_id = e.cell_integer_id "
        "JOIN genes g ON g.gene_integer_id = e.gene_integer_id "
        'WHERE c.cell_type = "NK cells" AND g.feature_name IN ("TMSB10", "TRAC", "DDX5") '
        "GROUP BY ALL",
        "SELECT c.batch, g.feature_name, MAX(e.value) AS top FROM cells c "
        "JOIN expression e ON c.cell_integer_id = e.cell_integer_id "
        "JOIN genes g ON g.gene_integer_id = e.gene_integer_id "
        "WHERE c.cell_type = 'NK cells' AND g.feature_name IN ('TMSB10', 'TRAC', 'DDX5') "
        "GROUP BY ALL",
    ),
    (
        "SELECT COUNT(*) AS n, SUM(value) AS s FROM expression WHERE cell_integer_id IN "
        "(SELECT cell_integer_id FROM cells WHERE total_counts > 8000)",
        None,
    ),
    (
        "SELECT cell_integer_id, gene_integer_id, value, RANK() OVER (PARTITION BY "
        "cell_integer_id ORDER BY value DESC, gene_integer_id) AS r FROM expression "
        "WHERE cell_integer_id IN (1, 2) QUALIFY r <= 3",
        None,
    ),
    (
        "SELECT cell_type, cell_id, total_counts, ROW_NUMBER() OVER (PARTITION BY cell_type "
        "ORDER BY total_counts DESC, cell_id) AS rn FROM cells QUALIFY rn <= 2",
        None,
    ),
    ("SELECT cell_id FROM cells WHERE total_counts > (SELECT AVG(total_counts) FROM cells)", None),
    (
        "WITH top AS (SELECT cell_integer_id FROM cells ORDER BY total_counts DESC, cell_id "
        "LIMIT 5) SELECT e.cell_integer_id, COUNT(*) AS n FROM expression e "
        "JOIN top USING (cell_integer_id) GROUP BY 1",
        None,
    ),
    ("SELECT COUNT(*) AS n, MAX(value) AS m FROM expression WHERE value > 50", None),
    (
        "SELECT gene_integer_id, AVG(value) AS a FROM expression GROUP BY 1 "
        "ORDER BY 2 DESC, 1 LIMIT 10",
        None,
    ),
    (
        "SELECT COUNT(*) AS n FROM cells WHERE cell_id LIKE '%-1' AND cell_id NOT LIKE 'AAA%'",
        None,
    ),
    ("SELECT * FROM expression WHERE cell_integer_id = 1 OR cell_integer_id = 499", None),
    (
        "SELECT c.cell_id FROM cells c WHERE EXISTS (SELECT 1 FROM expression e WHERE "
        "e.cell_integer_id = c.cell_integer_id AND e.gene_integer_id = 7 AND e.value > 2)",
        None,
    ),
    (
        "SELECT cell_id AS name FROM cells WHERE batch = 'batch1' AND cell_integer_id < 9 "
        "UNION ALL SELECT gene_id FROM genes WHERE gene_integer_id < 3",
        None,
    ),
    ("SELECT COUNT(*) AS n, SUM(spliced) AS s FROM layers WHERE cell_integer_id < 50", None),
    (
        "SELECT batch, COUNT(DISTINCT cell_type) AS k FROM cells GROUP BY batch "
        "HAVING COUNT(*) > 100",
        None,
    ),
    (
        'SELECT "cell_type", COUNT(*) AS n FROM cells WHERE "batch" = "batch2" GROUP BY 1',
        "SELECT cell_type, COUNT(*) AS n FROM cells WHERE batch = 'batch2' GROUP BY 1",
    ),
    (
        "SELECT c.cell_integer_id, COUNT(e.value) AS n FROM cells c LEFT JOIN expression e "
        "ON c.cell_integer_id = e.cell_integer_id AND e.gene_integer_id = 0 "
        "WHERE c.cell_integer_id < 20 GROUP BY 1",
        None,
    ),
    (
        "SELECT e.cell_integer_id, g.gene_id, e.value FROM expression e JOIN genes g "
        "ON e.gene_integer_id = g.gene_integer_id WHERE e.cell_integer_id = 42 "
        "ORDER BY e.value DESC, g.gene_id LIMIT 10",
        None,
    ),
    (
        "SELECT e.gene_integer_id, COUNT(*) AS n FROM expression e, cells c "
        "WHERE e.cell_integer_id = c.cell_integer_id AND c.total_counts BETWEEN 3000 AND 4000 "
        "AND e.gene_integer_id BETWEEN 100 AND 120 GROUP BY 1",
        None,
    ),
    ("SELECT * FROM expression WHERE cell_integer_id = 2.5", None),
]


def _ordered(query: str) -> bool:
    """Whether the outermost query fixes its row order: ORDER BY and LIMIT after the last
    parenthesis (an ORDER BY inside a CTE or subquery orders nothing outside it)."""
    tail = query.rsplit(")", 1)[-1]
    return "ORDER BY" in tail and "LIMIT" in tail


@needs_fixtures
@pytest.mark.parametrize(("query", "standard"), CORPUS, ids=[f"q{i}" for i in range(len(CORPUS))])
def test_corpus_equals_duckdb_in_memory(
    data: SLAFArray, ref: duckdb.DuckDBPyConnection, query: str, standard: str | None
) -> None:
    got = data.query(query)
    want = run(ref, standard or query)
    same(got, want, ordered=_ordered(query))


def test_corpus_is_large_and_varied() -> None:
    text = " ".join(q for q, _ in CORPUS).upper()
    assert len(CORPUS) >= 25
    for feature in ("IN (", "BETWEEN", "LIKE", "JOIN", "GROUP BY", "OVER (", "(SELECT"):
        assert feature in text, feature


# --- pushdown -----------------------------------------------------------------------------

#: (query, text the executed SQL must contain)
PUSHED = [
    ("SELECT * FROM expression WHERE cell_integer_id = 7", "cells := [7]"),
    ("SELECT * FROM expression WHERE cell_integer_id IN (3, 99, 100000, -1)", "cells := [3, 99]"),
    ("SELECT * FROM expression WHERE cell_integer_id BETWEEN 10 AND 30", "cells := '10:31'"),
    ("SELECT * FROM expression WHERE cell_integer_id >= 480", "cells := '480:500'"),
    ("SELECT * FROM expression WHERE gene_integer_id IN (0, 5)", "genes := [0, 5]"),
    (
        "SELECT * FROM expression WHERE cell_integer_id < 5 AND gene_integer_id < 100",
        "cells := '0:5', genes := '0:100'",
    ),
    (
        "SELECT c.cell_type, SUM(e.value) FROM expression e JOIN cells c "
        "ON e.cell_integer_id = c.cell_integer_id WHERE c.cell_type = 'B cells' GROUP BY 1",
        "cell_filter := '((`cell_type` = ''B cells''))'",
    ),
    (
        "SELECT SUM(e.value) FROM expression e JOIN genes g "
        "ON e.gene_integer_id = g.gene_integer_id WHERE g.feature_name LIKE 'RP%'",
        "gene_filter := '((`feature_name` LIKE ''RP%''))'",
    ),
    (
        "SELECT COUNT(*) FROM expression WHERE cell_integer_id IN "
        '(SELECT cell_integer_id FROM cells WHERE batch = "batch2")',
        "cell_filter := '((`batch` = ''batch2''))'",
    ),
    ("SELECT SUM(spliced) FROM layers WHERE cell_integer_id < 50", "(`cell_integer_id` < 50)"),
]


def _normalised(sql: str) -> str:
    # DuckDB prints a list literal as CAST(list_value(...) AS BIGINT[]).
    return re.sub(r"CAST\(list_value\(([^)]*)\) AS BIGINT\[\]\)", r"[\1]", sql)


@needs_fixtures
@pytest.mark.parametrize(("query", "selection"), PUSHED, ids=[f"p{i}" for i in range(len(PUSHED))])
def test_common_shapes_are_pushed_down(data: SLAFArray, query: str, selection: str) -> None:
    plan = data.explain_query(query)
    assert plan.pushed, plan.sql
    assert selection in _normalised(plan.sql), plan.sql
    assert ("slaf_slice(" in plan.sql) != ("FROM layers" in query), plan.sql


def _rows_scanned(data: SLAFArray, sql: str) -> int:
    """Rows the table-function scans produced while running ``sql`` (DuckDB's profile)."""
    con = data._sql._cursor()
    con.execute("PRAGMA enable_profiling = 'no_output'")
    try:
        con.execute(sql).fetchall()
        profile = json.loads(con.get_profiling_information(format="json"))
    finally:
        con.execute("PRAGMA disable_profiling")

    def walk(node: dict) -> int:
        function = str(node.get("extra_info", {}).get("Function", "")).upper()
        own = int(node.get("intermediate_rows", 0)) if function.startswith("SLAF_") else 0
        return own + sum(walk(child) for child in node.get("children", []))

    return sum(walk(node) for node in profile["operator"])


@needs_fixtures
def test_pushed_shapes_read_only_the_selected_rows(data: SLAFArray) -> None:
    nnz = data.nnz
    one_cell = int(
        data.query("SELECT COUNT(*) AS n FROM expression WHERE cell_integer_id = 7")[0, 0]
    )
    assert 0 < one_cell < nnz / 100
    plan = data.explain_query("SELECT * FROM expression WHERE cell_integer_id = 7")
    assert _rows_scanned(data, plan.sql) == one_cell
    # The same query without the rewrite reads every row of the table.
    assert _rows_scanned(data, "SELECT * FROM expression WHERE cell_integer_id = 7") == nnz
    join = (
        "SELECT COUNT(*) FROM expression e JOIN cells c ON e.cell_integer_id = c.cell_integer_id "
        "WHERE c.cell_type = 'B cells' AND c.batch = 'batch1'"
    )
    matched = int(data.query(join)[0, 0])
    scanned = _rows_scanned(data, data.explain_query(join).sql)
    # expression rows of the matching cells only: the cells table is held in DuckDB's memory
    assert scanned == matched


@needs_fixtures
def test_other_queries_are_not_rewritten(data: SLAFArray) -> None:
    for query in (
        "SELECT COUNT(*) FROM expression WHERE value > 3",
        "SELECT * FROM cells WHERE cell_integer_id = 3",
        "WITH expression AS (SELECT 1 AS cell_integer_id) "
        "SELECT * FROM expression WHERE cell_integer_id = 1",
        "SELECT COUNT(*) FROM expression WHERE cell_integer_id >= 0",
    ):
        plan = data.explain_query(query)
        assert not plan.pushed, plan.sql
        assert plan.sql == query


# --- slafdb-written fixtures (uint32 / uint16 expression columns) ---------------------------

FIXTURE_QUERIES = [
    "SELECT COUNT(*) AS n, SUM(value) AS s FROM expression",
    "SELECT * FROM expression WHERE cell_integer_id IN (0, 3, 10)",
    "SELECT gene_integer_id, SUM(value) AS s FROM expression "
    "WHERE cell_integer_id BETWEEN 5 AND 40 GROUP BY 1",
    "SELECT COUNT(*) AS n FROM expression e JOIN cells c ON e.cell_integer_id = c.cell_integer_id "
    "WHERE c.cell_integer_id % 3 = 0 AND c.cell_integer_id < 100",
    "SELECT e.cell_integer_id, COUNT(*) AS n FROM expression e JOIN genes g "
    "ON e.gene_integer_id = g.gene_integer_id WHERE g.gene_integer_id < 50 GROUP BY 1",
    "SELECT cell_id, cell_integer_id FROM cells WHERE cell_integer_id < 5",
]


@pytest.mark.parametrize(
    "query", FIXTURE_QUERIES, ids=[f"f{i}" for i in range(len(FIXTURE_QUERIES))]
)
def test_slafdb_fixtures(fixture_name: str, query: str) -> None:
    path = FIXTURES / fixture_name
    got = SLAFArray(path).query(query)
    want = run(reference(path), query)
    same(got, want)


# --- filter_cells / filter_genes ----------------------------------------------------------


@needs_fixtures
def test_filter_cells_follows_slafdb(data: SLAFArray) -> None:
    obs = data.obs
    same(data.filter_cells(cell_type="T cells"), obs.filter(pl.col("cell_type") == "T cells"), True)
    same(
        data.filter_cells(cell_type=["T cells", "NK cells"], total_counts=">5000"),
        obs.filter(
            pl.col("cell_type").is_in(["T cells", "NK cells"]) & (pl.col("total_counts") > 5000)
        ),
        True,
    )
    same(data.filter_cells(total_counts="<=2000"), obs.filter(pl.col("total_counts") <= 2000), True)
    same(
        data.filter_cells(total_counts=">=2000.5"),
        obs.filter(pl.col("total_counts") >= 2000.5),
        True,
    )
    same(
        data.filter_cells(total_counts=(3000, 4000)),
        obs.filter(pl.col("total_counts").is_between(3000, 4000)),
        True,
    )
    same(
        data.filter_cells(total_counts=(None, 1500)),
        obs.filter(pl.col("total_counts") <= 1500),
        True,
    )
    same(data.filter_cells(), obs, True)
    # the same rows as the SQL route
    sql = data.query(
        "SELECT cell_integer_id FROM cells WHERE batch = 'batch3' AND total_counts < 3000 "
        "ORDER BY cell_integer_id"
    )
    filtered = data.filter_cells(batch="batch3", total_counts="<3000")
    assert filtered["cell_integer_id"].to_list() == sql["cell_integer_id"].to_list()


@needs_fixtures
def test_filter_genes_follows_slafdb(data: SLAFArray) -> None:
    var = data.var
    names = var["feature_name"].head(3).to_list()
    same(
        data.filter_genes(feature_name=names), var.filter(pl.col("feature_name").is_in(names)), True
    )
    same(data.filter_genes(mt=True), var.filter(pl.col("mt")), True)
    same(
        data.filter_genes(n_cells_by_counts=">100", mt=False),
        var.filter((pl.col("n_cells_by_counts") > 100) & ~pl.col("mt")),
        True,
    )


@needs_fixtures
def test_filter_errors_are_value_errors(data: SLAFArray) -> None:
    with pytest.raises(ValueError, match="Column 'nope' not found in cell metadata"):
        data.filter_cells(nope=1)
    with pytest.raises(InvalidArgumentError, match="'abc' is not a number"):
        data.filter_cells(total_counts=">abc")
    with pytest.raises(ValueError, match="cell_type"):
        data.filter_cells(cell_type=">5")
    with pytest.raises(ValueError, match="range is a tuple"):
        data.filter_genes(n_cells_by_counts=(1, 2, 3))


# --- errors, threads, packaging -------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("SELECT * FROM nope", ["nope", "cells, genes, expression, layers"]),
        ("SELECT nope_column FROM cells", ["nope_column"]),
        ("SELECT c.nope FROM cells c", ["nope"]),
        ("SELEC 1", ["syntax error"]),
        ("CREATE TABLE t AS SELECT 1", ["one SELECT statement"]),
        ("SELECT 1; SELECT 2", ["one statement at a time"]),
        ("SELECT * FROM expression WHERE value = 'abc'", ["abc"]),
    ],
)
@needs_fixtures
def test_bad_queries_raise_value_errors_naming_the_problem(
    data: SLAFArray, query: str, names: list[str]
) -> None:
    with pytest.raises(QueryError) as info:
        data.query(query)
    assert isinstance(info.value, ValueError)
    for name in names:
        assert name in str(info.value)
    # the connection is still usable afterwards
    assert data.query("SELECT COUNT(*) AS n FROM cells")["n"][0] == 500


@needs_fixtures
def test_layers_table_absent_without_layers() -> None:
    array = SLAFArray(FIXTURES / stand_in("pbmc68k_reduced_inmemory.slaf"))
    with pytest.raises(QueryError, match="layers"):
        array.query("SELECT * FROM layers")


@needs_fixtures
def test_queries_from_several_threads(data: SLAFArray, ref: duckdb.DuckDBPyConnection) -> None:
    query = (
        "SELECT cell_integer_id, SUM(value) AS s FROM expression "
        "WHERE cell_integer_id < 50 GROUP BY 1"
    )
    want = run(ref, query)
    results: list[pl.DataFrame] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(data.query(query))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 12
    for got in results:
        same(got, want)


def test_unloadable_extension_is_a_clear_error(
    small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module without DuckDB's footer (a plain ``maturin develop``) is named, not a crash."""
    plain = tmp_path / "slaf.duckdb_extension"
    plain.write_bytes(b"\x7fELF not an extension")
    monkeypatch.setattr(slaf.sql, "EXTENSION", plain)
    with pytest.raises(ExtensionNotFoundError, match="could not load the SLAF extension") as info:
        SLAFArray(small_dataset).query("SELECT 1")
    assert isinstance(info.value, ImportError)


def test_the_module_is_the_extension() -> None:
    """One library serves Python and DuckDB: the package holds no second copy of it."""
    assert slaf.sql.extension_path().resolve() == slaf.sql.MODULE.resolve()
    copies = [
        p
        for p in slaf.sql.MODULE.parent.iterdir()
        if p.suffix == ".duckdb_extension" and not p.is_symlink()
    ]
    assert not copies


def test_installed_package_links_the_extension_in_the_cache(
    small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the package folder has no link (an installed wheel), the first query makes one in
    the user's cache and later queries reuse it."""
    monkeypatch.setattr(slaf.sql, "EXTENSION", tmp_path / "pkg" / "slaf.duckdb_extension")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    n = SLAFArray(small_dataset).query("SELECT count(*) AS n FROM cells")["n"][0]
    assert n == SLAFArray(small_dataset).shape[0]
    (link,) = (tmp_path / "cache" / "slaf" / "duckdb").glob("*/slaf.duckdb_extension")
    assert link.is_symlink() and link.resolve() == slaf.sql.MODULE.resolve()
    assert slaf.sql.extension_path() == link
