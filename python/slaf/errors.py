"""Exceptions raised by SLAF.

Each class also derives from the built-in exception a Python user would expect, so
``except FileNotFoundError`` or ``except KeyError`` keep working.
"""

from __future__ import annotations


class SLAFError(Exception):
    """Base class of every SLAF error."""


class DatasetNotFoundError(SLAFError, FileNotFoundError):
    """The dataset path does not exist."""


class InvalidDatasetError(SLAFError, ValueError):
    """The dataset exists but does not follow the SLAF format."""


class NotASLAFDatasetError(InvalidDatasetError):
    """The path is not a SLAF dataset (no ``config.json``, or a file rather than a directory)."""


class InvalidConfigError(InvalidDatasetError):
    """``config.json`` is malformed or of an unsupported format version."""


class MissingTableError(InvalidDatasetError):
    """A table that ``config.json`` names (or the format requires) is missing."""


class SelectionIndexError(SLAFError, IndexError):
    """A selector points outside the cells or genes axis."""


class UnknownNameError(SLAFError, KeyError):
    """A selector names cells, genes or keys that the dataset does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(SLAFError, ValueError):
    """An argument is malformed (wrong mask length, zero slice step, ...)."""


class StorageError(SLAFError, OSError):
    """Reading the underlying storage failed."""


class ResourceLimitError(SLAFError, MemoryError):
    """A size asked for (``max_genes``, ``n_bins``, a selection, ...) is above its limit or
    needs more memory than is available."""


class CorruptDatasetError(InvalidDatasetError):
    """The stored data contradicts itself (value count against ``config.json``, a gene stored
    twice for one cell): the dataset is corrupt."""


class QueryError(SLAFError, ValueError):
    """A SQL query is malformed or names a table or column the dataset does not have."""


class ExtensionNotFoundError(SLAFError, ImportError):
    """The DuckDB extension that ``SLAFArray.query`` loads is missing from the package."""


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
    "SLAFError",
    "SelectionIndexError",
    "StorageError",
    "UnknownNameError",
]
