"""``filter_cells`` / ``filter_genes``: obs/var rows matching keyword conditions, as slafdb has
them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from slaf.errors import InvalidArgumentError

_OPERATORS = (">=", "<=", ">", "<")


def condition(column: str, value: Any) -> pl.Expr:
    """The polars predicate of one ``column=value`` keyword, with slafdb 0.5.2's rules.

    Parameters
    ----------
    column
        The obs/var column.
    value
        ``">100"``, ``">=1.5"``, ``"<10"``, ``"<=3"``: a numeric comparison; a list (or set,
        numpy array, polars Series): membership; a tuple ``(low, high)``: the inclusive range
        ``low <= column <= high`` (``None`` leaves a side open; slafdb has no such form);
        anything else: equality.

    Returns
    -------
    polars.Expr
        The predicate.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"total_counts": [50, 150, 300]})
    >>> df.filter(condition("total_counts", ">100"))["total_counts"].to_list()
    [150, 300]
    >>> df.filter(condition("total_counts", (100, 200)))["total_counts"].to_list()
    [150]
    """
    col = pl.col(column)
    if isinstance(value, str) and value.startswith(_OPERATORS):
        operator = next(op for op in _OPERATORS if value.startswith(op))
        text = value[len(operator) :]
        try:
            number = float(text)
        except ValueError:
            raise InvalidArgumentError(
                f"filter {column}={value!r}: {text!r} is not a number"
            ) from None
        return {">=": col >= number, "<=": col <= number, ">": col > number, "<": col < number}[
            operator
        ]
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidArgumentError(
                f"filter {column}={value!r}: a range is a tuple (low, high), got {len(value)} items"
            )
        low, high = value
        parts = []
        if low is not None:
            parts.append(col >= low)
        if high is not None:
            parts.append(col <= high)
        return pl.all_horizontal(parts) if parts else pl.lit(True)
    if isinstance(value, list | set | frozenset | np.ndarray | pl.Series):
        return col.is_in(list(value))
    return col == value


def filter_metadata(frame: pl.DataFrame, filters: Mapping[str, Any], what: str) -> pl.DataFrame:
    """The rows of ``frame`` (obs or var) that satisfy every keyword condition.

    Parameters
    ----------
    frame
        Cell or gene metadata.
    filters
        ``column -> value`` conditions, see :func:`condition`.
    what
        ``"cell"`` or ``"gene"``, for messages.

    Returns
    -------
    polars.DataFrame
        The matching rows, in their order.

    Examples
    --------
    >>> import polars as pl
    >>> obs = pl.DataFrame({"cell_type": ["T", "B", "T"], "n": [1, 2, 3]})
    >>> filter_metadata(obs, {"cell_type": "T", "n": ">1"}, "cell")["n"].to_list()
    [3]
    """
    predicates = []
    for column, value in filters.items():
        if column not in frame.columns:
            raise InvalidArgumentError(
                f"Column '{column}' not found in {what} metadata "
                f"(columns: {', '.join(frame.columns)})"
            )
        predicates.append((column, value, condition(column, value)))
    result = frame
    for column, value, predicate in predicates:
        try:
            result = result.filter(predicate)
        except (pl.exceptions.PolarsError, TypeError, ValueError) as e:
            dtype = frame.schema[column]
            raise InvalidArgumentError(
                f"filter {column}={value!r} does not apply to {what} column '{column}' "
                f"of type {dtype}: {e}"
            ) from None
    return result
