"""SLAF: single-cell expression data on Lance tables, used in place.

>>> from slaf import SLAFArray
>>> data = SLAFArray("pbmc.slaf")   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slaf._native import __version__
from slaf.convert import convert
from slaf.errors import (
    CorruptDatasetError,
    DatasetNotFoundError,
    ExtensionNotFoundError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidDatasetError,
    MissingTableError,
    NotASLAFDatasetError,
    QueryError,
    ResourceLimitError,
    SelectionIndexError,
    SLAFError,
    StorageError,
    UnknownNameError,
)

if TYPE_CHECKING:
    from slaf.array import SLAFArray


def __getattr__(name: str) -> Any:
    # SLAFArray (and with it polars) is imported on first use, so that `slaf convert` and
    # `slaf.convert` start without it.
    if name == "SLAFArray":
        from slaf.array import SLAFArray

        globals()["SLAFArray"] = SLAFArray
        return SLAFArray
    raise AttributeError(f"module 'slaf' has no attribute {name!r}")


__all__ = [
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "ExtensionNotFoundError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "InvalidDatasetError",
    "MissingTableError",
    "NotASLAFDatasetError",
    "QueryError",
    "ResourceLimitError",
    "SLAFArray",
    "SLAFError",
    "SelectionIndexError",
    "StorageError",
    "UnknownNameError",
    "__version__",
    "convert",
]
