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
    from slaf.integrations.anndata import LazyAnnData, read_slaf


def __getattr__(name: str) -> Any:
    # SLAFArray (and with it polars) is imported on first use, so that `slaf convert` and
    # `slaf.convert` start without it.
    if name == "SLAFArray":
        from slaf.array import SLAFArray

        globals()["SLAFArray"] = SLAFArray
        return SLAFArray
    if name in ("read_slaf", "LazyAnnData"):
        from slaf.integrations import anndata

        globals()[name] = getattr(anndata, name)
        return globals()[name]
    if name == "pp":
        # imported on first use: it brings in the AnnData layer and pandas
        import slaf.pp as pp

        globals()["pp"] = pp
        return pp
    if name == "tl":
        import slaf.tl as tl

        globals()["tl"] = tl
        return tl
    raise AttributeError(f"module 'slaf' has no attribute {name!r}")


__all__ = [
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "ExtensionNotFoundError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "InvalidDatasetError",
    "LazyAnnData",
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
    "pp",
    "read_slaf",
    "tl",
]
