"""Normalise user selectors (ints, slices, masks, names, arrays) into the native form.

Every value is checked here before any conversion could change it: numpy would otherwise wrap
``2**64 - 1`` to ``-1`` (the last cell), read ``b"abc"`` as the ids 97, 98, 99 and turn
``[0, "name"]`` into the names ``"0"`` and ``"name"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from slaf.errors import SelectionIndexError

#: What the native module accepts: ``(kind, payload)``.
NativeSelector = tuple[str, Any]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_slice_part(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"slice {what} must be an integer or None, got {_shown(value)}")
    # Bounds past the int64 range select what the range's end does (Python clips slices).
    return min(max(int(value), _INT64_MIN), _INT64_MAX)


def _check_id(value: int, axis: str) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise SelectionIndexError(f"{axis} index {value} is out of range")
    return value


def _kind(value: Any) -> str:
    """``"bool"``, ``"int"`` or ``"name"``; a ``TypeError`` naming any other value."""
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, str):
        return "name"
    raise TypeError(
        f"selector value {_shown(value)} of type {type(value).__name__} is not an integer id, "
        "a boolean or a name"
    )


def items_kind(items: list[Any], axis: str) -> str:
    """The one kind (``"bool"``, ``"int"``, ``"name"``) of a list's elements, each checked;
    a ``TypeError`` naming the values when the list mixes kinds. ``"int"`` when empty.

    Examples
    --------
    >>> items_kind([3, 1], "cell")
    'int'
    """
    first: dict[str, Any] = {}
    for item in items:
        first.setdefault(_kind(item), item)
    if len(first) > 1:
        kinds = " and ".join(f"{k} {_shown(v)}" for k, v in first.items())
        raise TypeError(
            f"{axis} selector mixes kinds ({kinds}): use integer ids, a boolean mask or names"
        )
    return next(iter(first), "int")


def _from_items(items: list[Any], axis: str) -> NativeSelector:
    """A selector from the elements of a list (or object array), each checked."""
    kind = items_kind(items, axis)
    if kind == "bool":
        return ("mask", np.asarray(items, dtype=np.uint8).tobytes())
    if kind == "name":
        return ("names", [str(v) for v in items])
    ids = [_check_id(int(v), axis) for v in items]
    return ("ids", np.asarray(ids, dtype=np.int64).tobytes())


def _from_array(array: np.ndarray, axis: str) -> NativeSelector:
    if array.ndim != 1:
        raise TypeError(f"{axis} selector must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return ("ids", b"")
    kind = array.dtype.kind
    if kind == "b":
        return ("mask", array.astype(np.uint8).tobytes())
    if kind == "i":
        return ("ids", array.astype(np.int64).tobytes())
    if kind == "u":
        top = array.max()
        if int(top) > _INT64_MAX:
            raise SelectionIndexError(f"{axis} index {int(top)} is out of range")
        return ("ids", array.astype(np.int64).tobytes())
    if kind == "U":
        return ("names", [str(v) for v in array])
    if kind == "O":
        return _from_items(array.tolist(), axis)
    raise TypeError(
        f"{axis} selector of dtype {array.dtype} (first value {_shown(array[0])}) is not "
        "supported: use booleans, integers or names"
    )


def to_native(selector: Any, axis: str) -> NativeSelector:
    """Convert a selector for ``axis`` ("cell" or "gene") to ``(kind, payload)``.

    Parameters
    ----------
    selector
        ``None`` or ``slice(None)`` (everything), an int, a slice or ``range``, a boolean mask,
        integer ids, a name or a sequence of names (``cell_id`` / ``gene_id`` values).
    axis
        Used in error messages.

    Returns
    -------
    tuple
        The selector kind and its payload.

    Raises
    ------
    TypeError
        For values that are not ids, booleans or names (bytes, floats, ...), naming the value,
        and for lists that mix those kinds.
    SelectionIndexError
        For ids beyond the int64 range, naming the id (the native side checks the rest).
    """
    if selector is None:
        return ("all", None)
    if isinstance(selector, slice | range):
        start = _check_slice_part(selector.start, "start")
        stop = _check_slice_part(selector.stop, "stop")
        step = _check_slice_part(selector.step, "step")
        if start is None and stop is None and step in (None, 1):
            return ("all", None)
        return ("range", (start, stop, 1 if step is None else step))
    if isinstance(selector, bool | np.bool_):
        raise TypeError(f"a single boolean is not a {axis} selector; pass a boolean mask array")
    if isinstance(selector, int | np.integer):
        return ("ids", np.asarray([_check_id(int(selector), axis)], dtype=np.int64).tobytes())
    if isinstance(selector, str):
        return ("names", [selector])
    if isinstance(selector, bytes | bytearray | memoryview) or not isinstance(selector, Iterable):
        raise TypeError(
            f"unsupported {axis} selector {_shown(selector)} of type {type(selector).__name__}: "
            "use an int, slice, boolean mask, integer ids or names"
        )
    if hasattr(selector, "to_numpy"):  # pandas / polars objects
        selector = selector.to_numpy()
    if isinstance(selector, np.ndarray):
        return _from_array(selector, axis)
    items = list(selector)
    if not items:
        return ("ids", b"")
    return _from_items(items, axis)
