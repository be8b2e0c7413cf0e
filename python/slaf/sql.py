"""SQL over a dataset: the engine behind ``SLAFArray.query``.

Queries run in-process in DuckDB with the SLAF extension that ships inside this package
(``slaf.duckdb_extension``), so a query means the same here as in the DuckDB shell. The tables
``cells``, ``genes``, ``expression`` (and ``layers`` when the dataset has one) are views over
``slaf_scan``.

A statement goes through DuckDB's own parser (``json_serialize_sql``), is rewritten on the
parse tree and turned back into SQL (``json_deserialize_sql``):

* **Dialect.** slafdb runs Polars SQL, where a double-quoted name that is not a column reads as
  a string literal (the SQLite rule): ``WHERE batch = "batch1"``. Here too: a double-quoted
  name that DuckDB's binder cannot resolve as a column becomes a string literal; a real
  column still wins.
* **Pushdown.** DuckDB gives extension table functions no filter pushdown, so ``expression``
  references whose rows the query restricts are replaced by ``slaf_slice`` reads of only the
  rows needed: ``cell_integer_id`` / ``gene_integer_id`` equalities, ``IN`` lists, ranges and
  ``BETWEEN`` become ``cells :=`` / ``genes :=`` selections, and joins to ``cells`` / ``genes``
  (or ``IN (SELECT cell_integer_id FROM cells WHERE ...)``) with predicates on their columns
  become ``cell_filter :=`` / ``gene_filter :=``. Predicates on ``layers`` columns are passed
  to ``slaf_scan(..., filter := ...)``. The query's own ``WHERE`` and ``ON`` are kept, so the
  pushed selection only needs to be a superset: results are exact whether or not a shape is
  pushed down. Every other query reads the views.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from slaf import _native
from slaf.errors import ExtensionNotFoundError, InvalidArgumentError, QueryError, StorageError

#: The compiled module is also the DuckDB extension: it exports DuckDB's entry point and ends
#: with DuckDB's metadata footer, so a wheel carries the Lance/DataFusion code once.
MODULE = Path(_native.__file__)
#: DuckDB names an extension after its file name, so the module is loaded through a link named
#: ``slaf.duckdb_extension``: beside it in a source tree (made by the build), else in the user's
#: cache (an installed wheel's folder is not ours to write).
EXTENSION = MODULE.with_name("slaf.duckdb_extension")
#: Tables a query can name, in the order they are listed.
TABLES = ("cells", "genes", "expression", "layers")
#: cells/genes tables up to this many rows are held in DuckDB's memory (a few hundred MB at
#: most); larger ones are scanned from Lance by each query.
_MATERIALIZE_ROWS = 2_000_000

_COMPARISONS = {
    "COMPARE_EQUAL": "=",
    "COMPARE_NOTEQUAL": "<>",
    "COMPARE_LESSTHAN": "<",
    "COMPARE_LESSTHANOREQUALTO": "<=",
    "COMPARE_GREATERTHAN": ">",
    "COMPARE_GREATERTHANOREQUALTO": ">=",
}
# The same comparison with its operands swapped (`1 < col` is `col > 1`).
_MIRRORED = {
    "COMPARE_EQUAL": "COMPARE_EQUAL",
    "COMPARE_NOTEQUAL": "COMPARE_NOTEQUAL",
    "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN",
    "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
    "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN",
    "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
}
_INTEGER_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INTEGER": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
    "UTINYINT": (0, 2**8 - 1),
    "USMALLINT": (0, 2**16 - 1),
    "UINTEGER": (0, 2**32 - 1),
    "UBIGINT": (0, 2**64 - 1),
}
_FLOATS = ("FLOAT", "DOUBLE")
# Stored value types that slaf_slice returns exactly (as float32 or float64).
_EXACT_SLICE_VALUES = ("UTINYINT", "TINYINT", "USMALLINT", "SMALLINT", "FLOAT", "DOUBLE")
# Columns slaf_slice produces, by the expression columns they stand for.
_SLICE_COLUMNS = ("cell_integer_id", "gene_integer_id", "cell_id", "gene_id", "value")
_UNBOUND = re.compile(r'Referenced column "((?:[^"]|"")*)" not found')


def extension_path() -> Path:
    """The path DuckDB loads the SLAF extension from (see ``EXTENSION``).

    Returns
    -------
    Path
        ``EXTENSION`` where the build made it, else a link to the module in the user's cache
        folder (``$XDG_CACHE_HOME/slaf`` or ``~/.cache/slaf``), made on first use.

    Examples
    --------
    >>> from slaf.sql import MODULE, extension_path
    >>> extension_path().name, extension_path().resolve() == MODULE.resolve()
    ('slaf.duckdb_extension', True)
    """
    if EXTENSION.is_file():
        return EXTENSION
    module = MODULE.resolve()
    stat = module.stat()
    key = hashlib.sha256(f"{module}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    link = cache / "slaf" / "duckdb" / key[:16] / EXTENSION.name
    if not link.is_file():
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            # Made under a private name and renamed, so concurrent first queries agree.
            staged = link.with_name(f".{EXTENSION.name}.{os.getpid()}.{threading.get_ident()}")
            staged.unlink(missing_ok=True)
            staged.symlink_to(module)
            staged.replace(link)
        except OSError as e:
            raise ExtensionNotFoundError(
                f"cannot link the SLAF DuckDB extension into {link.parent}: {e}; set "
                "XDG_CACHE_HOME to a writable folder"
            ) from None
    return link


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _storage_options_sql(options: dict[str, str] | None) -> str:
    """The ``storage_options :=`` argument passing ``options`` to the extension, or ""."""
    if not options:
        return ""
    entries = ", ".join(f"{_sql_string(str(k))}: {_sql_string(str(v))}" for k, v in options.items())
    return f", storage_options := MAP {{{entries}}}"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lance_column(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class _Untranslatable(Exception):
    """A parse-tree node this module does not push down."""


@dataclass
class _Ids:
    """Integer ids a predicate allows: ``low..=high``, and only ``values`` when set."""

    low: int = -(2**63)
    high: int = 2**63
    values: set[int] | None = None

    def intersect(self, other: _Ids) -> _Ids:
        if self.values is None:
            values = other.values
        elif other.values is None:
            values = self.values
        else:
            values = self.values & other.values
        return _Ids(max(self.low, other.low), min(self.high, other.high), values)

    def clipped(self, n: int) -> list[int] | range:
        """The allowed ids in ``range(n)``: a sorted list or a range."""
        low, high = max(self.low, 0), min(self.high, n - 1)
        if self.values is not None:
            return sorted(v for v in self.values if low <= v <= high)
        return range(low, max(low, high + 1))


@dataclass
class _Ref:
    """A base-table reference to one of the dataset's tables in a FROM clause."""

    node: dict
    table: str
    binding: str
    #: Joins (innermost last) whose subtree holds the reference.
    joins: list[dict] = field(default_factory=list)


@dataclass
class Plan:
    """How a query runs.

    Attributes
    ----------
    sql
        The SQL DuckDB runs (the statement itself when nothing was rewritten).
    pushed
        Whether a table reference was replaced by a pushed-down read.
    literals
        Double-quoted names that were read as string literals.
    """

    sql: str
    pushed: bool
    literals: list[str]

    def __str__(self) -> str:
        return self.sql


class QueryEngine:
    """DuckDB with the SLAF extension loaded and the dataset's tables as views.

    One database per dataset; each thread queries through its own cursor (DuckDB connections
    are not shared between threads).

    Parameters
    ----------
    path
        The dataset's location, as the extension opens it.
    tables
        The dataset's table keys (``config["tables"]``).
    shape
        ``(n_cells, n_genes)``, to clip pushed-down id selections.

    Examples
    --------
    >>> engine = QueryEngine("pbmc.slaf", ["cells", "genes", "expression"], (700, 765))
    >>> engine.query("SELECT COUNT(*) AS n FROM cells")                # doctest: +SKIP
    >>> engine.plan("SELECT * FROM expression WHERE cell_integer_id = 3").pushed  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        path: str,
        tables: list[str],
        shape: tuple[int, int],
        storage_options: dict[str, str] | None = None,
    ) -> None:
        if "://" not in path:
            path = os.path.abspath(path)
        self.path = path
        #: ``, storage_options := MAP {...}`` for every SLAF table function call (or "")
        self.options = _storage_options_sql(storage_options)
        #: option values (credentials) kept out of plans and error messages
        self._secrets = [v for v in (storage_options or {}).values() if len(str(v)) >= 4]
        self.tables = [t for t in TABLES if t in tables]
        self.shape = shape
        self._lock = threading.Lock()
        self._local = threading.local()
        self._database: duckdb.DuckDBPyConnection | None = None
        #: table -> lower-case column name -> (stored name, DuckDB type)
        self.columns: dict[str, dict[str, tuple[str, str]]] = {}
        #: config.json's state when cells/genes were last put in memory (None: never)
        self._materialized_state: tuple[int, int, int] | None = None
        #: "TABLE" for cells/genes held in memory; the others are views
        self._kinds: dict[str, str] = {}

    # -- connection ------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        with self._lock:
            if self._database is None:
                self._database = self._open()
            self._refresh_annotations()
            if cursor is None:
                cursor = self._database.cursor()
        self._local.cursor = cursor
        return cursor

    def _config_state(self) -> tuple[int, int, int] | None:
        """What identifies the committed state of a local dataset: config.json's inode, size
        and modification time (every commit replaces the file). A remote dataset is the
        snapshot its ``SLAFArray`` opened: one state for the engine's life."""
        if "://" in self.path:
            return (0, 0, 0)
        try:
            st = os.stat(os.path.join(self.path, "config.json"))
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh_annotations(self) -> None:
        """``cells`` and ``genes`` as DuckDB tables in memory, so that metadata queries run at
        DuckDB's own speed instead of re-reading Lance (or the object store) each time; made
        again when a commit changes a local dataset's config.json. A table above
        ``_MATERIALIZE_ROWS`` rows stays a view over ``slaf_scan``."""
        assert self._database is not None
        state = self._config_state()
        if state is None or state == self._materialized_state:
            return
        con = self._database
        for table in ("cells", "genes"):
            if table not in self.tables:
                continue
            scan = f"slaf_scan({_sql_string(self.path)}, {_sql_string(table)}{self.options})"
            rows = con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]
            source = "TABLE" if rows <= _MATERIALIZE_ROWS else "VIEW"
            con.execute(f"DROP {self._kinds.get(table, 'VIEW')} {_identifier(table)}")
            con.execute(f"CREATE {source} {_identifier(table)} AS SELECT * FROM {scan}")
            self._kinds[table] = source
            self._describe(con, table)
        self._materialized_state = state

    def _describe(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        """Record ``table``'s columns (the rewrite resolves names against them)."""
        described = con.execute(f"DESCRIBE {_identifier(table)}").fetchall()
        self.columns[table] = {str(r[0]).lower(): (str(r[0]), str(r[1])) for r in described}

    def _open(self) -> duckdb.DuckDBPyConnection:
        extension = extension_path()
        con = duckdb.connect(
            ":memory:",
            config={
                "allow_unsigned_extensions": "true",
                "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false",
            },
        )
        try:
            con.execute(f"LOAD {_sql_string(str(extension))}")
        except duckdb.Error as e:
            con.close()
            raise ExtensionNotFoundError(
                f"DuckDB could not load the SLAF extension {extension}: {e}; rebuild the "
                "package (`bash .ci/setup`)"
            ) from None
        try:
            for table in self.tables:
                con.execute(
                    f"CREATE VIEW {_identifier(table)} AS SELECT * FROM "
                    f"slaf_scan({_sql_string(self.path)}, {_sql_string(table)}{self.options})"
                )
                self._describe(con, table)
        except duckdb.Error as e:
            con.close()
            raise _translate(e, self.tables, self._redact) from None
        return con

    # -- public ----------------------------------------------------------------------------

    def query(self, sql: str) -> pl.DataFrame:
        """Runs ``sql`` and returns its result as a polars DataFrame."""
        cursor = self._cursor()
        return self._run(sql, lambda text: cursor.sql(text).pl())[1]

    def plan(self, sql: str) -> Plan:
        """How ``sql`` would run, checked by DuckDB's binder but not executed."""
        cursor = self._cursor()
        return self._run(sql, lambda text: cursor.execute(f"EXPLAIN {text}").fetchall())[0]

    # -- the rewrite loop ------------------------------------------------------------------

    def _run(self, sql: str, execute: Any) -> tuple[Plan, Any]:
        if not isinstance(sql, str):
            raise InvalidArgumentError(f"query() takes SQL text, got {type(sql).__name__}")
        cursor = self._cursor()
        statement = self._parse(cursor, sql)
        source = sql.encode()
        literals: list[str] = []
        while True:
            plain = copy.deepcopy(statement)
            if literals:
                _quoted_to_literals(plain, source, {name.lower() for name in literals})
            pushed = copy.deepcopy(plain)
            did_push = _Pushdown(self, cursor).rewrite(pushed)
            plain_sql = self._deparse(cursor, plain) if literals else sql
            attempts = [(self._deparse(cursor, pushed), True)] if did_push else []
            attempts.append((plain_sql, False))
            error: duckdb.Error | None = None
            for text, is_pushed in attempts:
                try:
                    return Plan(self._redact(text), is_pushed, list(literals)), execute(text)
                except duckdb.Error as e:
                    # A pushed read that fails (where the plain query may not) falls back.
                    error = e
            assert error is not None
            name = _unbound_name(error)
            if (
                name is not None
                and name.lower() not in {n.lower() for n in literals}
                and _has_quoted_ref(statement, source, name.lower())
            ):
                literals.append(name)
                continue
            raise _translate(error, self.tables, self._redact) from None

    def _redact(self, text: str) -> str:
        """``text`` with the storage options' values (credentials) replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(str(secret), "***")
        return text

    def _parse(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> dict:
        text = cursor.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchall()[0][0]
        parsed = json.loads(text)
        if parsed.get("error"):
            message = parsed.get("error_message", "cannot parse the statement")
            if parsed.get("error_type") == "not implemented":
                raise QueryError(
                    "query() runs one SELECT statement (DESCRIBE and SHOW too); "
                    f"this statement is not one: {sql.strip()[:80]!r}"
                )
            raise QueryError(f"SQL syntax error: {message}")
        statements = parsed["statements"]
        if len(statements) != 1:
            raise QueryError(f"query() runs one statement at a time; got {len(statements)}")
        return parsed

    def _deparse(self, cursor: duckdb.DuckDBPyConnection, tree: dict) -> str:
        return cursor.execute(
            "SELECT json_deserialize_sql(?::JSON)", [json.dumps(tree)]
        ).fetchall()[0][0]

    def parse_from(self, cursor: duckdb.DuckDBPyConnection, from_sql: str) -> dict:
        """The parse-tree node of a FROM item written as SQL."""
        tree = self._parse(cursor, f"SELECT * FROM {from_sql}")
        return tree["statements"][0]["node"]["from_table"]


# -- dialect: double-quoted names as string literals ---------------------------------------


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _is_quoted(node: dict, source: bytes) -> bool:
    location = node.get("query_location")
    return isinstance(location, int) and 0 <= location < len(source) and source[location] == 34


def _quoted_refs(tree: dict, source: bytes, names: set[str]) -> Iterator[dict]:
    for node in _walk(tree):
        if node.get("class") != "COLUMN_REF":
            continue
        parts = node.get("column_names", [])
        if len(parts) == 1 and parts[0].lower() in names and _is_quoted(node, source):
            yield node


def _has_quoted_ref(tree: dict, source: bytes, name: str) -> bool:
    return any(True for _ in _quoted_refs(tree, source, {name}))


def _quoted_to_literals(tree: dict, source: bytes, names: set[str]) -> None:
    for node in list(_quoted_refs(tree, source, names)):
        text = node["column_names"][0]
        alias, location = node.get("alias", ""), node.get("query_location")
        node.clear()
        node.update(
            {
                "class": "CONSTANT",
                "type": "VALUE_CONSTANT",
                "alias": alias,
                "query_location": location,
                "literal": {"kind": "STRING", "text": text},
            }
        )


def _unbound_name(error: duckdb.Error) -> str | None:
    if not isinstance(error, duckdb.BinderException):
        return None
    match = _UNBOUND.search(str(error))
    return match.group(1).replace('""', '"') if match else None


def _translate(
    error: duckdb.Error, tables: list[str], redact: Callable[[str], str] = str
) -> Exception:
    message = redact(str(error).strip())
    if isinstance(error, duckdb.IOException):
        return StorageError(message)
    if isinstance(error, duckdb.CatalogException) and "Table with name" in message:
        message += f"\n(the dataset's tables: {', '.join(tables)})"
    return QueryError(message)


# -- pushdown ------------------------------------------------------------------------------


def _conjuncts(node: Any) -> list[dict]:
    if not isinstance(node, dict):
        return []
    if node.get("class") == "CONJUNCTION" and node.get("type") == "CONJUNCTION_AND":
        return [c for child in node["children"] for c in _conjuncts(child)]
    return [node]


def _constant(node: Any) -> Any:
    """The Python value of a literal (int, float, str or bool)."""
    if not isinstance(node, dict) or node.get("class") != "CONSTANT":
        raise _Untranslatable
    literal = node.get("literal") or {}
    kind, text = literal.get("kind"), literal.get("text")
    try:
        if kind == "INTEGER":
            return int(text)
        if kind == "NUMERIC":
            value = float(text)
            if not math.isfinite(value):
                raise _Untranslatable
            return value
        if kind == "STRING":
            return str(text)
        if kind == "BOOLEAN":
            return str(text).lower() == "true"
    except (TypeError, ValueError) as e:
        raise _Untranslatable from e
    raise _Untranslatable


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _arguments(node: dict) -> list[Any]:
    return [a.get("expression") for a in node.get("arguments", [])]


class _Pushdown:
    """Rewrites the ``expression`` and ``layers`` references of a parsed statement."""

    def __init__(self, engine: QueryEngine, cursor: duckdb.DuckDBPyConnection) -> None:
        self.engine = engine
        self.cursor = cursor
        self.pushed = False
        # The SELECT being rewritten: its references to the dataset's tables, whether its FROM
        # holds anything else (then unqualified columns are not attributed), its WHERE conjuncts.
        self.refs: list[_Ref] = []
        self.others = False
        self.where: list[dict] = []

    def rewrite(self, tree: dict) -> bool:
        """Rewrites ``tree`` in place; whether anything was pushed down."""
        shadowed = {
            str(entry.get("key", "")).lower()
            for node in _walk(tree)
            if isinstance(node.get("cte_map"), dict)
            for entry in node["cte_map"].get("map", [])
        }
        selects = [n for n in _walk(tree) if n.get("type") == "SELECT_NODE"]
        for select in selects:
            self._select(select, shadowed)
        return self.pushed

    # -- one SELECT ------------------------------------------------------------------------

    def _select(self, select: dict, shadowed: set[str]) -> None:
        refs: list[_Ref] = []
        self.others = False
        self._gather(select.get("from_table"), [], refs, shadowed)
        if not any(r.table in ("expression", "layers") for r in refs):
            return
        self.refs = refs
        self.where = _conjuncts(select.get("where_clause"))
        for ref in refs:
            try:
                if ref.table == "expression":
                    self._push_expression(ref)
                elif ref.table == "layers":
                    self._push_layers(ref)
            except _Untranslatable:
                continue

    def _gather(self, node: Any, joins: list[dict], refs: list[_Ref], shadowed: set[str]) -> None:
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "JOIN":
            inner = [*joins, node]
            self._gather(node.get("left"), inner, refs, shadowed)
            self._gather(node.get("right"), inner, refs, shadowed)
            return
        if kind == "EMPTY":
            return
        table = str(node.get("table_name", "")).lower()
        if (
            kind == "BASE_TABLE"
            and not node.get("schema_name")
            and not node.get("catalog_name")
            and table in self.engine.columns
            and table not in shadowed
        ):
            binding = (node.get("alias") or table).lower()
            refs.append(_Ref(node, table, binding, joins))
        else:
            self.others = True

    def _usable(self, *refs: _Ref) -> list[dict]:
        """Conjuncts that every row of the result satisfies and that may restrict ``refs``:
        the WHERE clause and the ON conditions of inner joins holding all of them."""
        found = list(self.where)
        for join in refs[0].joins:
            if join.get("join_type") != "INNER" or join.get("ref_type") != "REGULAR":
                continue
            if all(any(j is join for j in r.joins) for r in refs[1:]):
                found.extend(_conjuncts(join.get("condition")))
        return found

    def _owner(self, node: Any) -> tuple[_Ref, str] | None:
        """The reference and stored column name a COLUMN_REF binds to, when certain."""
        if not isinstance(node, dict) or node.get("class") != "COLUMN_REF":
            return None
        parts = [str(p).lower() for p in node.get("column_names", [])]
        if len(parts) == 2:
            matches = [r for r in self.refs if r.binding == parts[0]]
            if len(matches) != 1:
                return None
            columns = self.engine.columns[matches[0].table]
            return (matches[0], columns[parts[1]][0]) if parts[1] in columns else None
        if len(parts) == 1 and not self.others:
            matches = [r for r in self.refs if parts[0] in self.engine.columns[r.table]]
            if len(matches) != 1:
                return None
            return matches[0], self.engine.columns[matches[0].table][parts[0]][0]
        return None

    def _column_of(self, node: Any, ref: _Ref) -> str | None:
        """The stored name of the column of ``ref`` that ``node`` refers to, if it does."""
        owner = self._owner(node)
        return owner[1] if owner is not None and owner[0] is ref else None

    def _is_key(self, node: Any, ref: _Ref, key: str) -> bool:
        column = self._column_of(node, ref)
        return column is not None and column.lower() == key

    # -- expression ------------------------------------------------------------------------

    def _push_expression(self, ref: _Ref) -> None:
        node = ref.node
        if node.get("column_name_alias") or node.get("sample") or node.get("at_clause"):
            raise _Untranslatable
        columns = self.engine.columns["expression"]
        if not set(columns) <= set(_SLICE_COLUMNS) or "value" not in columns:
            raise _Untranslatable
        if columns["value"][1] not in _EXACT_SLICE_VALUES:
            raise _Untranslatable
        cells, genes = _Ids(), _Ids()
        cell_filters: list[str] = []
        gene_filters: list[str] = []
        for conjunct in self._usable(ref):
            for axis, ids in (("cell_integer_id", cells), ("gene_integer_id", genes)):
                bounds = self._id_bounds(conjunct, ref, axis)
                if bounds is not None:
                    merged = ids.intersect(bounds)
                    ids.low, ids.high, ids.values = merged.low, merged.high, merged.values
            subquery = self._in_subquery(conjunct, ref)
            if subquery is not None:
                (cell_filters if subquery[0] == "cells" else gene_filters).append(subquery[1])
            linked = self._joined(conjunct, ref)
            if linked is not None:
                other, table = linked
                lance = self._lance_filter(other)
                if lance is not None:
                    (cell_filters if table == "cells" else gene_filters).append(lance)
        n_cells, n_genes = self.engine.shape
        args = [_sql_string(self.engine.path) + self.engine.options]
        restricted = False
        for name, ids, n in (("cells", cells, n_cells), ("genes", genes, n_genes)):
            if ids == _Ids():
                continue
            selected = ids.clipped(n)
            if isinstance(selected, range):
                if len(selected) == n:
                    continue
                args.append(f"{name} := '{selected.start}:{selected.stop}'")
            else:
                args.append(f"{name} := [{', '.join(map(str, selected))}]::BIGINT[]")
            restricted = True
        for name, filters in (("cell_filter", cell_filters), ("gene_filter", gene_filters)):
            if filters:
                text = " AND ".join(f"({f})" for f in filters)
                args.append(f"{name} := {_sql_string(text)}")
                restricted = True
        if not restricted:
            return
        select = []
        for name, duck_type in columns.values():
            source = name.lower()
            select.append(f"CAST({_identifier(source)} AS {duck_type}) AS {_identifier(name)}")
        binding = node.get("alias") or node.get("table_name")
        from_sql = (
            f"(SELECT {', '.join(select)} FROM slaf_slice({', '.join(args)})) "
            f"AS {_identifier(binding)}"
        )
        self._replace(node, from_sql)

    def _replace(self, node: dict, from_sql: str) -> None:
        replacement = self.engine.parse_from(self.cursor, from_sql)
        node.clear()
        node.update(replacement)
        self.pushed = True

    def _id_bounds(self, node: dict, ref: _Ref, column: str) -> _Ids | None:
        """The ids of ``ref.column`` that ``node`` allows, or ``None`` when it says nothing."""
        try:
            kind = node.get("type")
            if node.get("class") == "COMPARISON" and kind in _COMPARISONS:
                left, right = node["left"], node["right"]
                if not self._is_key(left, ref, column):
                    left, right, kind = right, left, _MIRRORED[kind]
                if not self._is_key(left, ref, column):
                    return None
                value = _constant(right)
                if not _is_number(value):
                    return None
                if kind == "COMPARE_EQUAL":
                    whole = float(value).is_integer()
                    return _Ids(values={int(value)} if whole else set())
                if kind == "COMPARE_LESSTHAN":
                    return _Ids(high=math.ceil(value) - 1)
                if kind == "COMPARE_LESSTHANOREQUALTO":
                    return _Ids(high=math.floor(value))
                if kind == "COMPARE_GREATERTHAN":
                    return _Ids(low=math.floor(value) + 1)
                if kind == "COMPARE_GREATERTHANOREQUALTO":
                    return _Ids(low=math.ceil(value))
                return None
            if kind == "COMPARE_IN":
                children = node["children"]
                if not self._is_key(children[0], ref, column):
                    return None
                values = [_constant(c) for c in children[1:]]
                if not all(_is_number(v) for v in values):
                    return None
                return _Ids(values={int(v) for v in values if float(v).is_integer()})
            if kind == "COMPARE_BETWEEN":
                if not self._is_key(node["input"], ref, column):
                    return None
                low, high = _constant(node["lower"]), _constant(node["upper"])
                if not (_is_number(low) and _is_number(high)):
                    return None
                return _Ids(low=math.ceil(low), high=math.floor(high))
            if kind == "CONJUNCTION_OR":
                values: set[int] = set()
                for child in node["children"]:
                    bounds = self._id_bounds(child, ref, column)
                    if bounds is None or bounds.values is None:
                        return None
                    values |= {v for v in bounds.values if bounds.low <= v <= bounds.high}
                return _Ids(values=values)
            if kind == "CONJUNCTION_AND":
                result = _Ids()
                found = False
                for child in node["children"]:
                    bounds = self._id_bounds(child, ref, column)
                    if bounds is not None:
                        result, found = result.intersect(bounds), True
                return result if found else None
        except (_Untranslatable, KeyError, TypeError, OverflowError):
            return None
        return None

    def _joined(self, node: dict, ref: _Ref) -> tuple[_Ref, str] | None:
        """``ref.x_integer_id = other.x_integer_id`` with ``other`` a cells/genes reference:
        (other, its table)."""
        if node.get("class") != "COMPARISON" or node.get("type") != "COMPARE_EQUAL":
            return None
        for mine, theirs in ((node["left"], node["right"]), (node["right"], node["left"])):
            column = (self._column_of(mine, ref) or "").lower()
            owner = self._owner(theirs)
            if owner is None or not column:
                continue
            other, other_column = owner
            for table, key in (("cells", "cell_integer_id"), ("genes", "gene_integer_id")):
                if other.table == table and column == key and other_column.lower() == key:
                    if any(c is node for c in self._usable(ref, other)):
                        return other, table
        return None

    def _lance_filter(self, ref: _Ref) -> str | None:
        """A Lance SQL filter implied by the usable conjuncts on ``ref``'s columns."""
        parts = []
        for conjunct in self._usable(ref):
            text = self._lance(conjunct, ref)
            if text is not None:
                parts.append(text)
        return " AND ".join(f"({p})" for p in parts) if parts else None

    def _in_subquery(self, node: dict, ref: _Ref) -> tuple[str, str] | None:
        """``ref.cell_integer_id IN (SELECT cell_integer_id FROM cells WHERE ...)`` (or genes):
        (table, Lance filter)."""
        if node.get("class") != "SUBQUERY" or node.get("subquery_type") != "ANY":
            return None
        if node.get("comparison_type") != "COMPARE_EQUAL":
            return None
        column = (self._column_of(node.get("child"), ref) or "").lower()
        inner = (node.get("subquery") or {}).get("node") or {}
        if inner.get("type") != "SELECT_NODE" or inner.get("modifiers"):
            return None
        if inner.get("group_expressions") or inner.get("having") or inner.get("qualify"):
            return None
        if (inner.get("cte_map") or {}).get("map"):
            return None
        source = inner.get("from_table") or {}
        table = str(source.get("table_name", "")).lower()
        key = {"cells": "cell_integer_id", "genes": "gene_integer_id"}.get(table)
        if source.get("type") != "BASE_TABLE" or key is None or column != key:
            return None
        if source.get("schema_name") or source.get("catalog_name") or source.get("sample"):
            return None
        select = inner.get("select_list") or []
        if len(select) != 1 or select[0].get("class") != "COLUMN_REF":
            return None
        if [str(p).lower() for p in select[0]["column_names"]][-1] != key:
            return None
        inner_ref = _Ref(source, table, (source.get("alias") or table).lower())
        saved = (self.refs, self.others, self.where)
        try:
            self.refs, self.others, self.where = [inner_ref], False, []
            filters = []
            for conjunct in _conjuncts(inner.get("where_clause")):
                text = self._lance(conjunct, inner_ref)
                if text is not None:
                    filters.append(text)
        finally:
            self.refs, self.others, self.where = saved
        if not filters:
            return None
        return table, " AND ".join(f"({f})" for f in filters)

    # -- layers ----------------------------------------------------------------------------

    def _push_layers(self, ref: _Ref) -> None:
        node = ref.node
        if node.get("column_name_alias") or node.get("sample") or node.get("at_clause"):
            raise _Untranslatable
        lance = self._lance_filter(ref)
        if lance is None:
            return
        binding = node.get("alias") or node.get("table_name")
        self._replace(
            node,
            f"(SELECT * FROM slaf_scan({_sql_string(self.engine.path)}, 'layers', "
            f"filter := {_sql_string(lance)}{self.engine.options})) AS {_identifier(binding)}",
        )

    # -- Lance SQL ---------------------------------------------------------------------------

    def _lance(self, node: dict, ref: _Ref) -> str | None:
        """Lance SQL implied by ``node`` over ``ref``'s columns (weakened across AND)."""
        if node.get("type") == "CONJUNCTION_AND":
            parts = [self._lance(c, ref) for c in node["children"]]
            kept = [p for p in parts if p is not None]
            return " AND ".join(f"({p})" for p in kept) if kept else None
        try:
            return self._lance_exact(node, ref)
        except (_Untranslatable, KeyError, TypeError):
            return None

    def _lance_exact(self, node: dict, ref: _Ref) -> str:
        kind = node.get("type")
        if kind in ("CONJUNCTION_OR", "CONJUNCTION_AND"):
            joiner = " OR " if kind == "CONJUNCTION_OR" else " AND "
            return joiner.join(f"({self._lance_exact(c, ref)})" for c in node["children"])
        if node.get("class") == "COMPARISON" and kind in _COMPARISONS:
            left, right = node["left"], node["right"]
            if self._column_of(left, ref) is None:
                left, right, kind = right, left, _MIRRORED[kind]
            column, value = self._typed(left, right, ref)
            return f"{_lance_column(column)} {_COMPARISONS[kind]} {value}"
        if kind == "COMPARE_IN":
            children = node["children"]
            items = [self._typed(children[0], c, ref) for c in children[1:]]
            column = items[0][0]
            return f"{_lance_column(column)} IN ({', '.join(v for _, v in items)})"
        if kind == "COMPARE_BETWEEN":
            column, low = self._typed(node["input"], node["lower"], ref)
            _, high = self._typed(node["input"], node["upper"], ref)
            return f"{_lance_column(column)} >= {low} AND {_lance_column(column)} <= {high}"
        if kind in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL"):
            column = self._column_of(node["children"][0], ref)
            if column is None:
                raise _Untranslatable
            suffix = "IS NULL" if kind == "OPERATOR_IS_NULL" else "IS NOT NULL"
            return f"{_lance_column(column)} {suffix}"
        if node.get("class") == "COLUMN_REF":  # a boolean column on its own
            column = self._column_of(node, ref)
            if column is None or self.engine.columns[ref.table][column.lower()][1] != "BOOLEAN":
                raise _Untranslatable
            return f"{_lance_column(column)} = TRUE"
        if node.get("class") == "FUNCTION" and node.get("function_name") == "~~":
            subject, pattern = _arguments(node)
            column, text = self._typed(subject, pattern, ref)
            if not text.startswith("'") or "\\" in text:
                raise _Untranslatable
            return f"{_lance_column(column)} LIKE {text}"
        raise _Untranslatable

    def _typed(self, column_node: Any, value_node: Any, ref: _Ref) -> tuple[str, str]:
        """(stored column, Lance literal) for a column compared with a literal of a matching
        type; anything Lance might read differently from DuckDB is untranslatable."""
        column = self._column_of(column_node, ref)
        if column is None:
            raise _Untranslatable
        duck_type = self.engine.columns[ref.table][column.lower()][1]
        value = _constant(value_node)
        if duck_type in _INTEGER_RANGES or duck_type in _FLOATS:
            if not _is_number(value):
                raise _Untranslatable
            if duck_type in _INTEGER_RANGES:
                low, high = _INTEGER_RANGES[duck_type]
                if not low <= value <= high:
                    raise _Untranslatable
                if isinstance(value, float) and not value.is_integer():
                    raise _Untranslatable
                return column, str(int(value))
            return column, repr(float(value))
        if duck_type == "VARCHAR" and isinstance(value, str):
            return column, _sql_string(value)
        if duck_type == "BOOLEAN" and isinstance(value, bool):
            return column, "TRUE" if value else "FALSE"
        raise _Untranslatable
