"""SLAF: single-cell expression data on Lance tables, used in place.

>>> from slaf import SLAFArray
>>> data = SLAFArray("pbmc.slaf")   # doctest: +SKIP
"""

from slaf._native import __version__
from slaf.array import SLAFArray
from slaf.convert import convert
from slaf.errors import (
    DatasetNotFoundError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidDatasetError,
    MissingTableError,
    NotASLAFDatasetError,
    SelectionIndexError,
    SLAFError,
    StorageError,
    UnknownNameError,
)

__all__ = [
    "DatasetNotFoundError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "InvalidDatasetError",
    "MissingTableError",
    "NotASLAFDatasetError",
    "SLAFArray",
    "SLAFError",
    "SelectionIndexError",
    "StorageError",
    "UnknownNameError",
    "__version__",
    "convert",
]
