"""Normalise user selectors (ints, slices, masks, names, arrays) into the native form."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

#: What the native module accepts: ``(kind, payload)``.
NativeSelector = tuple[str, Any]


def _check_slice_part(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"slice {what} must be an integer or None, got {type(value).__name__}")
    return int(value)


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
        return ("ids", np.asarray([selector], dtype=np.int64).tobytes())
    if isinstance(selector, str):
        return ("names", [selector])
    if not isinstance(selector, Iterable):
        raise TypeError(
            f"unsupported {axis} selector of type {type(selector).__name__}: use an int, slice, "
            "boolean mask, integer ids or names"
        )
    if hasattr(selector, "to_numpy"):  # pandas / polars objects
        selector = selector.to_numpy()
    array = np.asarray(selector if isinstance(selector, np.ndarray) else list(selector))
    if array.ndim != 1:
        raise TypeError(f"{axis} selector must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return ("ids", b"")
    if array.dtype == np.bool_:
        return ("mask", array.astype(np.uint8).tobytes())
    if np.issubdtype(array.dtype, np.integer):
        return ("ids", array.astype(np.int64).tobytes())
    if array.dtype.kind in "US" or (
        array.dtype == object and all(isinstance(v, str) for v in array)
    ):
        return ("names", [str(v) for v in array])
    raise TypeError(
        f"{axis} selector of dtype {array.dtype} is not supported: use booleans, integers or names"
    )
