"""The SQL tests in ``sql/*.test`` (sqllogictest) against both DuckDB engines users run.

Every file runs twice: in Python duckdb 2.0 and in the ``duckdb`` shell 1.5.6 from the
``duckdb-cli`` wheel, each loading the extension from the local repository that
``.ci/build-extension`` lays out (``build/repository``). The runner is small and supports what the
files use: ``require``, ``statement ok|error``, ``query <types> [rowsort]``, and ``${FIXTURES}``
for the slafdb 0.5.2 fixture folder. Values are compared as DuckDB renders them (``::VARCHAR``),
so both engines are held to the same text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from conftest import FIXTURES, HAVE_SHARED, NO_SHARED, REPO, needs_fixtures, stand_in

SQL_DIR = REPO / "sql"
REPOSITORY = REPO / "build" / "repository"
CLI = REPO / ".venv" / "bin" / "duckdb"
NULL = "NULL"


@dataclass
class Record:
    """One sqllogictest record."""

    kind: str  # "statement" or "query"
    sql: str
    line: int
    expect_error: bool = False
    expected: list[str] = field(default_factory=list)
    rowsort: bool = False


def parse(path: Path) -> list[Record]:
    """Parses a ``.test`` file into records; ``require`` lines are checked, not returned.

    Parameters
    ----------
    path
        The sqllogictest file.

    Returns
    -------
    list[Record]
        Statements and queries in file order, with ``${FIXTURES}`` substituted.
    """
    text = path.read_text().replace("${FIXTURES}", str(FIXTURES))
    lines = text.split("\n")
    records: list[Record] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            i += 1
            continue
        words = line.split()
        if words[0] == "require":
            assert words[1:] == ["slaf"], f"{path}:{i + 1}: unsupported require {words[1:]}"
            i += 1
            continue
        if words[0] not in ("statement", "query"):
            raise ValueError(f"{path}:{i + 1}: unexpected line {line!r}")
        start = i + 1
        sql_lines: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() not in ("", "----"):
            sql_lines.append(lines[i])
            i += 1
        expected: list[str] = []
        if i < len(lines) and lines[i].strip() == "----":
            i += 1
            while i < len(lines) and lines[i].strip() != "":
                expected.append(lines[i])
                i += 1
        records.append(
            Record(
                kind=words[0],
                sql="\n".join(sql_lines).strip().rstrip(";"),
                line=start,
                expect_error=words[0] == "statement" and words[1] == "error",
                expected=expected,
                rowsort=words[0] == "query" and "rowsort" in words[2:],
            )
        )
    return records


def as_text(sql: str) -> str:
    """Wraps a query so every column comes back as DuckDB's own text rendering."""
    return f"SELECT COLUMNS(*)::VARCHAR FROM ({sql})"


class PythonEngine:
    """Python duckdb with the extension installed from the local repository."""

    def __init__(self, extension_dir: Path) -> None:
        self.con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        self.con.execute(f"SET extension_directory = '{extension_dir}'")
        self.con.execute(f"INSTALL slaf FROM '{REPOSITORY}'")
        self.con.execute("LOAD slaf")

    def run(self, sql: str, query: bool) -> tuple[list[list[str]] | None, str | None]:
        """Runs one record; returns (rows, None) or (None, error message)."""
        try:
            if query:
                rows = self.con.execute(as_text(sql)).fetchall()
                return [[NULL if v is None else str(v) for v in row] for row in rows], None
            self.con.execute(sql)
            return [], None
        except duckdb.Error as e:
            return None, str(e)


class CliEngine:
    """The ``duckdb`` shell (1.5.6): one process per record, replaying the file's earlier
    successful statements (``SET VARIABLE`` …) first."""

    def __init__(self, extension_dir: Path) -> None:
        self.prelude = [f"SET extension_directory = '{extension_dir}'", "LOAD slaf"]
        self.setup: list[str] = []
        out = self._shell([*self.prelude[:1], f"INSTALL slaf FROM '{REPOSITORY}'", "LOAD slaf"])
        assert out.returncode == 0, out.stderr

    def _shell(self, statements: list[str]) -> subprocess.CompletedProcess[str]:
        script = "".join(f"{s};\n" for s in statements)
        return subprocess.run(
            [str(CLI), "-unsigned", "-bail", "-noheader", "-list", "-separator", "\t", ":memory:"],
            input=script,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def run(self, sql: str, query: bool) -> tuple[list[list[str]] | None, str | None]:
        """Runs one record; returns (rows, None) or (None, error message)."""
        body = as_text(sql) if query else sql
        out = self._shell([*self.prelude, *self.setup, body])
        if out.returncode != 0 or "Error" in out.stderr:
            return None, out.stderr.strip() or f"exit status {out.returncode}"
        if not query:
            self.setup.append(sql)
            return [], None
        lines = [ln for ln in out.stdout.split("\n") if ln != ""]
        return [ln.split("\t") for ln in lines], None


def check(engine: PythonEngine | CliEngine, path: Path) -> None:
    """Runs every record of ``path`` on ``engine``, failing on the first mismatch."""
    if not HAVE_SHARED and "${FIXTURES}" in path.read_text():
        pytest.skip(NO_SHARED)
    for record in parse(path):
        where = f"{path.name}:{record.line} ({type(engine).__name__})"
        rows, error = engine.run(record.sql, record.kind == "query")
        if record.expect_error:
            assert error is not None, f"{where}: expected an error, got success"
            if record.expected:
                wanted = "\n".join(record.expected).strip()
                assert wanted.lower() in error.lower(), f"{where}: error {error!r} lacks {wanted!r}"
            continue
        assert error is None, f"{where}: {error}"
        if record.kind == "query":
            assert rows is not None
            got = ["\t".join(row) for row in rows]
            wanted = list(record.expected)
            if record.rowsort:
                got, wanted = sorted(got), sorted(wanted)
            assert got == wanted, f"{where}: rows differ\n got: {got}\nwant: {wanted}"


TEST_FILES = sorted(SQL_DIR.glob("*.test"))


@pytest.fixture(scope="module")
def extension_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh extension directory; fails when the repository has not been built."""
    built = REPOSITORY / "v2.0.0" / "linux_amd64" / "slaf.duckdb_extension"
    if not built.exists():
        pytest.fail(f"{built} is missing: run .ci/build-extension first")
    return tmp_path_factory.mktemp("duckdb_extensions")


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_python_duckdb(path: Path, extension_dir: Path) -> None:
    check(PythonEngine(extension_dir / "python"), path)


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_duckdb_cli(path: Path, extension_dir: Path) -> None:
    if not CLI.exists() and shutil.which("duckdb") is None:
        pytest.fail(f"{CLI} is missing: pip install duckdb-cli")
    check(CliEngine(extension_dir / "cli"), path)


def test_sql_files_exist() -> None:
    names = {p.name for p in TEST_FILES}
    assert {"slaf_info.test", "slaf_scan.test", "slaf_slice.test", "slaf_tokenize.test"} <= names


@needs_fixtures
def test_custom_repository_setting(extension_dir: Path) -> None:
    """``SET custom_extension_repository`` + plain ``INSTALL slaf`` also works."""
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"SET extension_directory = '{extension_dir / 'custom'}'")
    con.execute(f"SET custom_extension_repository = '{REPOSITORY}'")
    con.execute("INSTALL slaf")
    con.execute("LOAD slaf")
    path = FIXTURES / stand_in("pbmc10x_v3_mtx_chunked.slaf")  # 1,107 cells either way
    assert con.execute(f"SELECT n_cells FROM slaf_info('{path}')").fetchone() == (1107,)


def test_footer_is_duckdb_metadata() -> None:
    """The packaged file ends with the 534-byte footer (C_STRUCT, v1.5.6, linux_amd64)."""
    data = (REPOSITORY / "v1.5.6" / "linux_amd64" / "slaf.duckdb_extension").read_bytes()
    footer = data[-534:]
    assert footer[4:20] == b"duckdb_signature"
    fields = [footer[22 + 32 * k : 22 + 32 * (k + 1)].rstrip(b"\0") for k in range(8)]
    assert fields[3:] == [b"C_STRUCT", b"v0.1.0", b"v1.5.6", b"linux_amd64", b"4"]
    same = (REPOSITORY / "v2.0.0" / "linux_amd64" / "slaf.duckdb_extension").read_bytes()
    assert same == data


def test_record_parser() -> None:
    """Records split on blank lines; error text follows ``----``."""
    parsed = parse(SQL_DIR / "slaf_info.test")
    assert parsed[0].kind == "query" and parsed[0].expected[0].split("\t")[0] == "1107"
    assert any(r.expect_error for r in parsed)
    assert re.search(r"slaf_info\(", parsed[0].sql)
