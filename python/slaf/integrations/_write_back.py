"""Changes a :class:`~slaf.integrations.anndata.LazyAnnData` writes back to its dataset, as
slafdb's does: ``adata.obs[key] = values``, ``adata.var[...]``, ``adata.obsm[...]``,
``adata.varm[...]``, ``adata.layers[...]`` and ``del`` of what was added.

Only the LazyAnnData that ``read_slaf`` returned writes back, and only while it is the whole
dataset; views raise (a value per selected cell can't fill a column of all cells), copies
change in memory only, as anndata's copies do. Each change is one commit in the core (new Lance
versions, then config.json replaced atomically); keys that came from the conversion are
protected there. This module turns Python values into the Arrow arrays the core takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from slaf import _native
from slaf.errors import InvalidArgumentError

if TYPE_CHECKING:
    from slaf.integrations.anndata import LazyAnnData


def column_array(column: pd.Series) -> pa.Array:
    """An obs/var column as stored: categoricals as their strings (as the converter stores
    them), missing values as nulls."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object).where(column.notna(), None)
    try:
        return pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise TypeError(f"cannot store column {column.name!r} ({column.dtype}): {e}") from e


def embedding_array(values: Any, n_rows: int, what: str) -> tuple[np.ndarray, pa.Array]:
    """A 2-d array of ``n_rows`` rows as a fixed-size-list array (float32 unless float64)."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] != n_rows:
        raise ValueError(f"{what} needs a 2-d array of {n_rows} rows, not shape {values.shape}")
    if values.dtype != np.float64:
        values = values.astype(np.float32)
    flat = pa.array(np.ascontiguousarray(values).ravel())
    return values, pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def csr_parts(value: Any, shape: tuple[int, int], what: str) -> tuple[pa.Array, ...]:
    """``(indptr, indices, data)`` of a matrix of ``shape``: a lazy matrix (computed), a
    scipy sparse matrix or a dense array."""
    if hasattr(value, "compute") and not sp.issparse(value):
        value = value.compute()
    matrix = value.tocsr() if sp.issparse(value) else sp.csr_matrix(np.asarray(value))
    if matrix.shape != shape:
        raise ValueError(f"{what} needs shape {shape}, not {matrix.shape}")
    return (
        pa.array(matrix.indptr.astype(np.int64)),
        pa.array(matrix.indices),
        pa.array(matrix.data),
    )


def check_whole(adata: LazyAnnData, what: str) -> None:
    """Raise unless ``adata`` writes back (the object ``read_slaf`` returned, unsliced)."""
    if not adata._writes_back:
        raise InvalidArgumentError(
            f"{what} is written back to the dataset only from the LazyAnnData read_slaf "
            "returned; this is a view or a copy of it (to_memory() gives an AnnData you can "
            "change freely)"
        )
    if adata.is_view:
        n_cells, n_genes = adata.slaf.shape
        raise InvalidArgumentError(
            f"{what} can't be written back: this LazyAnnData selects {adata.n_obs} of "
            f"{n_cells} cells and {adata.n_vars} of {n_genes} genes (a filter narrowed it "
            "in place), and a stored column holds a value for every cell and gene; assign on "
            "read_slaf(path) itself, or use to_memory()"
        )


def set_annotation(adata: LazyAnnData, section: str, key: str, values: pa.Array) -> None:
    """Write ``section[key]`` (obs/var/obsm/varm) and reopen the dataset."""
    _native.NativeWriter.set_annotation(adata.slaf.slaf_path, section, key, values)
    adata._dataset.reload()


def set_layer(adata: LazyAnnData, key: str, value: Any) -> None:
    """Write layer ``key`` and reopen the dataset."""
    indptr, indices, data = csr_parts(value, adata.shape, f"layers[{key!r}]")
    _native.NativeWriter.set_layer(adata.slaf.slaf_path, key, indptr, indices, data)
    adata._dataset.reload()


def delete(adata: LazyAnnData, section: str, key: str) -> None:
    """Remove ``section[key]`` (added by an earlier change) and reopen the dataset."""
    _native.NativeWriter.delete_annotation(adata.slaf.slaf_path, section, key)
    adata._dataset.reload()


class StoredFrame(pd.DataFrame):
    """obs/var of the LazyAnnData ``read_slaf`` returned: assigning or deleting a whole
    column writes it back to the dataset, then changes this frame. Anything derived from it
    (``.copy()``, ``.iloc[...]``, arithmetic) is a plain ``pandas.DataFrame``."""

    _metadata: ClassVar[list[str]] = ["_slaf_owner", "_slaf_section"]

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    @classmethod
    def of(cls, frame: pd.DataFrame, owner: LazyAnnData, section: str) -> StoredFrame:
        stored = cls(frame, copy=False)
        stored._slaf_owner = owner
        stored._slaf_section = section
        return stored

    def _keys(self, key: Any) -> list[str]:
        keys = [key] if isinstance(key, str) else key
        if not isinstance(keys, (list, tuple, pd.Index)) or not all(
            isinstance(k, str) for k in keys
        ):
            raise TypeError(
                f"{self._slaf_section} of a SLAF dataset is written back by whole columns "
                f"(a column name or a list of them), not by {type(key).__name__}; "
                "to_memory() gives an AnnData you can change freely"
            )
        return list(keys)

    def __setitem__(self, key: Any, value: Any) -> None:
        owner, section = self._slaf_owner, self._slaf_section
        keys = self._keys(key)
        # pandas' own rules (alignment on the index, broadcasting, length checks) decide
        # the new columns before anything is written.
        scratch = pd.DataFrame(index=self.index)
        scratch[key] = value
        for name in keys:
            check_whole(owner, f"{section}[{name!r}]")
            set_annotation(owner, section, name, column_array(scratch[name]))
            super().__setitem__(name, scratch[name])

    def __delitem__(self, key: Any) -> None:
        owner, section = self._slaf_owner, self._slaf_section
        for name in self._keys(key):
            check_whole(owner, f"del {section}[{name!r}]")
            delete(owner, section, name)
            super().__delitem__(name)
