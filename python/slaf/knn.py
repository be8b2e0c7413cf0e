"""Nearest-neighbour search over obsm/varm embeddings, behind :class:`~slaf.SLAFArray`.

The search itself is the core's (``slaf::knn``): a Lance vector index where the key has one,
the exact flat search otherwise. This module gives it the shape Python users expect: numpy
query vectors in, a polars frame with names and annotation columns out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from slaf import _native
from slaf.errors import InvalidArgumentError, UnknownNameError

if TYPE_CHECKING:
    from slaf.array import SLAFArray

Section = Literal["obsm", "varm"]


def _keys(data: SLAFArray, section: Section) -> dict[str, int]:
    native = data._native
    pairs = native.obsm_keys() if section == "obsm" else native.varm_keys()
    return dict(pairs)


def resolve_key(data: SLAFArray, key: str | None, section: Section) -> tuple[str, int]:
    """The embedding key to search (the only one when ``key`` is None) and its dimension."""
    keys = _keys(data, section)
    if key is None:
        if len(keys) != 1:
            raise InvalidArgumentError(
                f"name the {section} key to search with key=...; "
                f"this dataset has {', '.join(keys) or 'none'}"
            )
        key = next(iter(keys))
    if key not in keys:
        raise UnknownNameError(
            f"no {section} key {key!r} in this dataset (available: {', '.join(keys) or 'none'})"
        )
    return key, keys[key]


def section_of(data: SLAFArray, key: str, section: Section | None) -> Section:
    """Where ``key`` lives: ``section`` if given, else obsm, else varm."""
    if section is not None:
        if section not in ("obsm", "varm"):
            raise InvalidArgumentError(f"section must be 'obsm' or 'varm', not {section!r}")
        return section
    in_obsm, in_varm = key in _keys(data, "obsm"), key in _keys(data, "varm")
    if in_obsm and in_varm:
        raise InvalidArgumentError(f"{key!r} is both an obsm and a varm key: pass section=")
    if not (in_obsm or in_varm):
        raise UnknownNameError(f"no obsm or varm key {key!r} in this dataset")
    return "obsm" if in_obsm else "varm"


def query_matrix(vectors: Any, width: int, what: str) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(n, width)`` array (one vector may be 1-D)."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"query vectors must be numeric arrays: {e}") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise InvalidArgumentError(
            f"query vectors must be a 1-D vector or a non-empty 2-D array, not shape {array.shape}"
        )
    if array.shape[1] != width:
        raise InvalidArgumentError(
            f"query vectors have dimension {array.shape[1]} but {what} has dimension {width}"
        )
    return np.ascontiguousarray(array)


def search(
    data: SLAFArray,
    section: Section,
    key: str,
    queries: np.ndarray,
    k: int,
    options: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(query, id, distance)`` arrays from the core; ``options`` are ``filter, nprobes,
    refine, metric, exact``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, not {type(k).__name__}")
    if k < 1:
        raise InvalidArgumentError(f"k must be at least 1, got {k}")
    query, ids, distance, _metric, _indexed = _native.nearest(
        data._native,
        section,
        key,
        queries.reshape(-1),
        int(k),
        options["filter"],
        options["nprobes"],
        options["refine"],
        options["metric"],
        bool(options["exact"]),
    )
    return query, ids, distance


def nearest_to_vectors(
    data: SLAFArray,
    section: Section,
    vectors: Any,
    k: int,
    key: str | None,
    columns: list[str] | None,
    options: dict[str, Any],
) -> pl.DataFrame:
    """The result frame of a search for query ``vectors`` in ``section[key]``."""
    key, width = resolve_key(data, key, section)
    queries = query_matrix(vectors, width, f"{section}[{key!r}]")
    query, ids, distance = search(data, section, key, queries, k, options)
    return hits_frame(data, section, query.astype(np.int64), ids, distance, columns)


def hits_frame(
    data: SLAFArray,
    section: Section,
    query: Any,
    ids: np.ndarray,
    distance: np.ndarray,
    columns: list[str] | None,
) -> pl.DataFrame:
    """The result frame: ``query, <axis>_integer_id, <axis>_id, distance`` and ``columns``."""
    axis = "cell" if section == "obsm" else "gene"
    table = data.obs if section == "obsm" else data.var
    rows = pl.Series(ids.astype(np.int64))
    frame = pl.DataFrame(
        {
            "query": query,
            f"{axis}_integer_id": rows,
            f"{axis}_id": table[f"{axis}_id"].gather(rows),
            "distance": distance,
        }
    )
    for column in columns or []:
        if column not in table.columns:
            raise UnknownNameError(
                f"no {'obs' if axis == 'cell' else 'var'} column {column!r} to add to the results"
            )
        frame = frame.with_columns(table[column].gather(rows).alias(column))
    return frame


def index_record(row: tuple) -> dict[str, Any]:
    """One index as a dict (the native module returns tuples)."""
    names = (
        "section",
        "key",
        "name",
        "index_type",
        "metric",
        "num_partitions",
        "indexed_rows",
        "unindexed_rows",
    )
    return dict(zip(names, row, strict=True))
