"""Polars predicates translated into Lance SQL filters, for pushdown into ``scan_slaf``.

Polars hands an IO source the predicate as an expression; this module walks its serialized form
(``Expr.meta.serialize(format="json")``) and writes the parts Lance can evaluate as a SQL
string. Whatever it cannot translate is left out (a conjunct of an ``AND`` is dropped, anything
else gives no filter), so the pushed filter is never stricter than the predicate: the source
still applies the full predicate to every batch, so results are exact either way.

Translated: comparisons (``== != < <= > >=``) between a column and a literal, ``&``, ``|``,
``~``, ``is_null``/``is_not_null``, ``is_in`` with a literal list, ``is_between``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import polars as pl

_COMPARISONS = {"Eq": "=", "NotEq": "!=", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
# The same comparison with its operands swapped (`1 < col` is `col > 1`).
_MIRRORED = {"Eq": "Eq", "NotEq": "NotEq", "Lt": "Gt", "LtEq": "GtEq", "Gt": "Lt", "GtEq": "LtEq"}


class _Untranslatable(Exception):
    """A node that has no Lance SQL equivalent here."""


def to_lance_filter(
    predicate: pl.Expr, pushable: Callable[[str], bool] = lambda _: True
) -> str | None:
    """The Lance SQL filter equivalent to (or weaker than) ``predicate``, or ``None``.

    Parameters
    ----------
    predicate
        A boolean Polars expression over the scanned table's columns.
    pushable
        Whether a column may appear in the filter (e.g. only scalar columns).

    Returns
    -------
    str or None
        SQL accepted by Lance's ``filter``, or ``None`` when no part can be translated.
    """
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # an expression Polars cannot serialize: no pushdown
        return None
    return _Translator(pushable).weakened(tree)


class _Translator:
    def __init__(self, pushable: Callable[[str], bool]) -> None:
        self.pushable = pushable

    def weakened(self, node: Any) -> str | None:
        """SQL implied by ``node``: exact where possible, else the translatable conjuncts."""
        binary = node.get("BinaryExpr") if isinstance(node, dict) else None
        if binary is not None and binary["op"] in ("And", "LogicalAnd"):
            parts = [self.weakened(binary["left"]), self.weakened(binary["right"])]
            kept = [p for p in parts if p is not None]
            if len(kept) < 2:
                return kept[0] if kept else None
            return " AND ".join(f"({p})" for p in kept)
        try:
            return self.exact(node)
        except _Untranslatable:
            return None

    def exact(self, node: Any) -> str:
        """SQL with exactly the truth value of ``node`` (null where Polars gives null)."""
        if not isinstance(node, dict) or len(node) != 1:
            raise _Untranslatable
        ((kind, body),) = node.items()
        if kind == "BinaryExpr":
            return self.binary(body)
        if kind == "Function":
            return self.function(body)
        if kind == "Column":
            # A boolean column used as a predicate on its own.
            return self.column(body)
        raise _Untranslatable

    def binary(self, body: dict) -> str:
        op, left, right = body["op"], body["left"], body["right"]
        if op in ("And", "LogicalAnd", "Or", "LogicalOr"):
            sql_op = "AND" if op in ("And", "LogicalAnd") else "OR"
            return f"({self.exact(left)}) {sql_op} ({self.exact(right)})"
        if op not in _COMPARISONS:
            raise _Untranslatable
        if _is_column(right) and not _is_column(left):
            left, right, op = right, left, _MIRRORED[op]
        if not _is_column(left):
            raise _Untranslatable
        value = literal(right)
        if value is None:  # comparing with null gives null in Polars and in SQL
            raise _Untranslatable
        return f"{self.column(left['Column'])} {_COMPARISONS[op]} {sql_literal(value)}"

    def function(self, body: dict) -> str:
        function, inputs = body["function"], body["input"]
        boolean = function.get("Boolean") if isinstance(function, dict) else None
        if boolean is None:
            raise _Untranslatable
        name = boolean if isinstance(boolean, str) else next(iter(boolean))
        if name == "Not":
            return f"NOT ({self.exact(inputs[0])})"
        if name in ("IsNull", "IsNotNull"):
            column = self.column_of(inputs[0])
            return f"{column} IS {'NOT ' if name == 'IsNotNull' else ''}NULL"
        if name == "IsIn":
            if boolean["IsIn"].get("nulls_equal"):
                raise _Untranslatable
            values = [v for v in literal_list(inputs[1]) if v is not None]
            if not values:
                raise _Untranslatable
            items = ", ".join(sql_literal(v) for v in values)
            return f"{self.column_of(inputs[0])} IN ({items})"
        if name == "IsBetween":
            column = self.column_of(inputs[0])
            low, high = literal(inputs[1]), literal(inputs[2])
            if low is None or high is None:
                raise _Untranslatable
            closed = boolean["IsBetween"]["closed"]
            lower = ">=" if closed in ("Both", "Left") else ">"
            upper = "<=" if closed in ("Both", "Right") else "<"
            return f"{column} {lower} {sql_literal(low)} AND {column} {upper} {sql_literal(high)}"
        raise _Untranslatable

    def column_of(self, node: Any) -> str:
        if not _is_column(node):
            raise _Untranslatable
        return self.column(node["Column"])

    def column(self, name: Any) -> str:
        if not isinstance(name, str) or not self.pushable(name):
            raise _Untranslatable
        return "`" + name.replace("`", "``") + "`"


def _is_column(node: Any) -> bool:
    return isinstance(node, dict) and "Column" in node


def literal(node: Any) -> Any:
    """The Python value of a scalar literal node (``None`` for null)."""
    if not isinstance(node, dict) or "Literal" not in node:
        raise _Untranslatable
    lit = node["Literal"]
    if "Dyn" in lit:
        ((_, value),) = lit["Dyn"].items()
        return value
    if "Scalar" in lit:
        scalar = lit["Scalar"]
        if scalar == "Null" or (isinstance(scalar, dict) and "Null" in scalar):
            return None
        if isinstance(scalar, dict) and len(scalar) == 1:
            ((kind, value),) = scalar.items()
            if kind in ("String", "Boolean") or kind.startswith(("Int", "UInt", "Float")):
                return value
    raise _Untranslatable


def literal_list(node: Any) -> list[Any]:
    """The values of a list literal (Polars serializes them as an Arrow IPC stream)."""
    if not isinstance(node, dict) or "Literal" not in node:
        raise _Untranslatable
    scalar = node["Literal"].get("Scalar")
    if not isinstance(scalar, dict) or "List" not in scalar:
        raise _Untranslatable
    import io

    try:
        series = pl.read_ipc_stream(io.BytesIO(bytes(scalar["List"]))).to_series()
    except Exception as e:
        raise _Untranslatable from e
    values = series.explode().to_list() if series.dtype == pl.List else series.to_list()
    if any(not isinstance(v, (bool, int, float, str, type(None))) for v in values):
        raise _Untranslatable
    return values


def sql_literal(value: Any) -> str:
    """``value`` as a SQL literal."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Untranslatable
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise _Untranslatable


def ids_of(predicate: pl.Expr, column: str, n_ids: int) -> range | list[int] | None:
    """The ids of ``column`` for which ``predicate`` can hold, from its ``AND``-ed comparisons,
    ``is_in`` and ``is_between`` on that column; ``None`` when it does not constrain them.

    The answer may be too wide (other conjuncts are ignored) but never too narrow, so reading
    the rows of these cells (or genes) and then applying the predicate gives the exact result.

    Parameters
    ----------
    predicate
        A boolean Polars expression.
    column
        The integer id column (``cell_integer_id``, ``gene_integer_id``).
    n_ids
        Ids are clipped to ``range(n_ids)``.

    Returns
    -------
    range or list of int or None
        Ascending candidate ids.
    """
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:
        return None
    low, high, ids = 0, n_ids - 1, None
    constrained = False
    for node in _conjuncts(tree):
        bounds = _id_bounds(node, column)
        if bounds is None:
            continue
        constrained = True
        node_low, node_high, node_ids = bounds
        low, high = max(low, node_low), min(high, node_high)
        if node_ids is not None:
            ids = node_ids if ids is None else ids & node_ids
    if not constrained:
        return None
    if ids is not None:
        return sorted(i for i in ids if low <= i <= high)
    return range(low, max(low, high + 1))


def _conjuncts(node: Any) -> list[Any]:
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if binary is not None and binary["op"] in ("And", "LogicalAnd"):
        return _conjuncts(binary["left"]) + _conjuncts(binary["right"])
    return [node]


def _id_bounds(node: Any, column: str) -> tuple[int, int, set[int] | None] | None:
    """(lowest, highest, exact set or None) of the integer ids ``node`` allows, or ``None``."""
    unbounded = (-(2**63), 2**63)
    try:
        if "BinaryExpr" in node:
            body = node["BinaryExpr"]
            op, left, right = body["op"], body["left"], body["right"]
            if _is_column(right) and not _is_column(left):
                left, right, op = right, left, _MIRRORED.get(op, op)
            if left != {"Column": column} or op not in _COMPARISONS:
                return None
            value = literal(right)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            if op == "Eq":
                whole = float(value).is_integer()
                return (*unbounded, {int(value)} if whole else set())
            if op in ("Lt", "LtEq"):
                top = math.ceil(value) - 1 if op == "Lt" else math.floor(value)
                return unbounded[0], top, None
            if op in ("Gt", "GtEq"):
                bottom = math.floor(value) + 1 if op == "Gt" else math.ceil(value)
                return bottom, unbounded[1], None
            return None
        function = node["Function"]
        boolean = function["function"].get("Boolean")
        name = boolean if isinstance(boolean, str) else next(iter(boolean))
        if function["input"][0] != {"Column": column}:
            return None
        if name == "IsIn":
            ids = set()
            for v in literal_list(function["input"][1]):
                if v is None:
                    continue  # null never matches (nulls_equal is off when this is pushed)
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    return None
                if float(v).is_integer():
                    ids.add(int(v))
            return (*unbounded, ids)
        if name == "IsBetween":
            low, high = literal(function["input"][1]), literal(function["input"][2])
            closed = boolean["IsBetween"]["closed"]
            bottom = math.ceil(low) if closed in ("Both", "Left") else math.floor(low) + 1
            top = math.floor(high) if closed in ("Both", "Right") else math.ceil(high) - 1
            return bottom, top, None
    except (_Untranslatable, KeyError, TypeError, AttributeError, StopIteration, ValueError):
        return None
    return None
