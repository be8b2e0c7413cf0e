"""``read_slaf`` → ``LazyAnnData``: a SLAF dataset in AnnData's shape, read only when asked.

A view is the dataset plus two position arrays (selected cells, selected genes; ``None`` for
all). Slicing composes positions and reads nothing; obs/var are read once per dataset and
shared by its views; expression is read by ``X.compute()`` (only the selected cells' rows)
or streamed in cell chunks by the reductions, so nothing proportional to the whole of X is
held unless asked for.

``slaf.pp`` records its transformations (per-cell normalisation factors, ``log1p``, ``scale``)
on the ``LazyAnnData``; they are applied to every block that ``X`` produces, so the stored
data stays untouched and results match scanpy's in-memory ones. Columns and embeddings that
``pp`` adds live in memory on the object (``obs``/``var`` frames, ``obsm``/``varm``/``uns``).

What a user assigns to the LazyAnnData ``read_slaf`` returned (``obs``/``var`` columns,
``obsm``/``varm``, ``layers``) is written back to the dataset, as slafdb does: see
``_write_back``.
"""

from __future__ import annotations

import copy as _copy
import os
from collections.abc import Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

from slaf._compat import ignore_tuning
from slaf._selectors import items_kind
from slaf.array import SLAFArray
from slaf.integrations import _write_back

# Stored values per chunk when X is streamed: ~24 MB of values, indices and row ids. With the
# next chunk read ahead and the reader's own buffers, a pass holds several; 2M measured both
# faster and ~100 MB lighter than 4M on the 100k-cell pp recipe.
_VALUES_PER_CHUNK = 2_000_000

Positions = np.ndarray | None  # int64 positions into the dataset's axis; None = all of it


# ---------------------------------------------------------------------------------------------
# Selectors: every AnnData index form → positions relative to the current view
# ---------------------------------------------------------------------------------------------


def _as_array(key: Any, what: str) -> np.ndarray:
    if isinstance(key, pl.Series):
        return key.to_numpy()
    if isinstance(key, pd.Series | pd.Index):
        if isinstance(key.dtype, pd.CategoricalDtype):
            return np.asarray(key.astype(str))
        return key.to_numpy()
    if isinstance(key, np.ndarray):
        return key
    items = list(key)
    if not items:
        return np.zeros(0, dtype=np.int64)
    # One rule with SLAFArray's selectors: every element checked, no mixing of kinds (numpy
    # would otherwise turn 0 into the name "0").
    kind = items_kind(items, what)
    return np.asarray(items, dtype=object if kind == "name" else None)


def _positions(key: Any, names: pd.Index, what: str) -> Positions:
    """Positions (into the current view's axis of length ``len(names)``) that ``key`` selects.

    ``None`` means the whole axis in order, so a full slice stays a no-op.
    """
    n = len(names)
    if key is None or key is Ellipsis:
        return None
    if isinstance(key, slice):
        if key == slice(None):
            return None
        return np.arange(n, dtype=np.int64)[key]
    if isinstance(key, range):
        key = np.asarray(key, dtype=np.int64)
    if isinstance(key, bool | np.bool_):
        raise TypeError(f"a single boolean is not a {what} index; use a boolean mask")
    if isinstance(key, int | np.integer):
        i = int(key)
        if not -n <= i < n:
            raise IndexError(f"{what} index {i} is out of range for {n} {what}s")
        return np.array([i % n], dtype=np.int64)
    if isinstance(key, str):
        return _by_name(np.array([key], dtype=object), names, what)
    if sp.issparse(key) or (isinstance(key, np.ndarray) and key.ndim > 1):
        shape = getattr(key, "shape", None)
        raise IndexError(f"a {what} index must be one-dimensional, not of shape {shape}")
    try:
        values = _as_array(key, what)
    except TypeError as err:
        if "not iterable" in str(err):
            raise TypeError(f"cannot index {what}s with {type(key).__name__}: {key!r}") from None
        raise
    if values.dtype == bool:
        if len(values) != n:
            raise IndexError(
                f"boolean {what} mask has length {len(values)}, but there are {n} {what}s"
            )
        return np.flatnonzero(values).astype(np.int64)
    if values.dtype.kind in "iu":
        if len(values) and (values.max() >= n or values.min() < -n):
            bad = values[(values >= n) | (values < -n)][0]
            raise IndexError(f"{what} index {int(bad)} is out of range for {n} {what}s")
        return np.where(values < 0, values + n, values).astype(np.int64)
    if values.dtype.kind in "OUS":
        return _by_name(values, names, what)
    raise TypeError(
        f"cannot index {what}s with an array of {values.dtype}: use integers, names or a mask"
    )


def _by_name(values: np.ndarray, names: pd.Index, what: str) -> np.ndarray:
    found = names.get_indexer(values)
    if (found < 0).any():
        missing = [str(v) for v in values[found < 0][:5]]
        raise KeyError(f"unknown {what} name(s): {', '.join(missing)}")
    return found.astype(np.int64)


def _split(key: Any) -> tuple[Any, Any]:
    """``adata[rows]`` / ``adata[rows, cols]`` → (rows, cols)."""
    if isinstance(key, tuple):
        if len(key) == 1:
            return key[0], None
        if len(key) == 2:
            if key[0] is Ellipsis:
                return None, key[1]
            return key
        raise IndexError(f"AnnData takes at most two indices (cells, genes), not {len(key)}")
    return key, None


def _compose(outer: Positions, inner: Positions) -> Positions:
    """Positions in the dataset after selecting ``inner`` within the view ``outer``."""
    if inner is None:
        return outer
    if outer is None:
        return inner
    return outer[inner]


def _count(positions: Positions, total: int) -> int:
    return total if positions is None else len(positions)


def _selector(positions: Positions) -> Any:
    return None if positions is None else positions


# ---------------------------------------------------------------------------------------------
# Shared per-dataset state
# ---------------------------------------------------------------------------------------------


def _pandas(frame: pl.DataFrame, name_column: str, id_column: str) -> pd.DataFrame:
    """obs/var as anndata has them: indexed by name, without our id columns, with the
    strings anndata would store as categoricals (fewer distinct values than rows) as such."""
    out = frame.drop(id_column).to_pandas()
    index = pd.Index(out.pop(name_column).astype(str).to_numpy(dtype=object), name=None)
    out.index = index
    for column in out.columns:
        values = out[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            if values.map(lambda v: isinstance(v, str) or v is None).all():
                if values.nunique(dropna=True) < len(values):
                    out[column] = values.astype("category")
    return out


class _Dataset:
    """What every view of one dataset shares: the array and its obs/var, read once."""

    def __init__(self, array: SLAFArray) -> None:
        self.array = array

    def reload(self) -> None:
        """See a change just committed: reopen the dataset, forget what was read."""
        self.array._reload()
        for name in ("obs", "var"):
            self.__dict__.pop(name, None)

    @cached_property
    def obs(self) -> pd.DataFrame:
        return _pandas(self.array.obs, "cell_id", "cell_integer_id")

    @cached_property
    def var(self) -> pd.DataFrame:
        return _pandas(self.array.var, "gene_id", "gene_integer_id")

    @cached_property
    def values_per_cell(self) -> float:
        return self.array.nnz / max(1, self.array.n_cells)


# ---------------------------------------------------------------------------------------------
# Recorded transformations (slaf.pp), applied to each block of X as it is read
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalizeTotal:
    """Divide each cell's values by ``divisors[cell]`` (indexed by dataset cell position).

    Stored per dataset cell so that later selections and filters keep working on positions.
    """

    divisors: np.ndarray


@dataclass(frozen=True)
class Log1p:
    """``log1p(x)``, divided by ``log(base)`` when a base is given (as scanpy's ``log1p``)."""

    base: float | None = None


@dataclass(frozen=True)
class Scale:
    """``(x - mean) / std`` per gene (indexed by dataset gene position), clipped at
    ``max_value``; without ``zero_center`` only the division, so sparse stays sparse."""

    mean: np.ndarray
    std: np.ndarray
    zero_center: bool = True
    max_value: float | None = None


Transform = NormalizeTotal | Log1p | Scale


def _float(block: sp.csr_matrix, dtype: Any = np.float32) -> sp.csr_matrix:
    # scanpy turns integer counts into floats before dividing or taking logs.
    if np.issubdtype(block.dtype, np.floating):
        return block
    return block.astype(dtype)


def apply_transforms(
    block: sp.csr_matrix | np.ndarray,
    transforms: tuple[Transform, ...],
    cells: np.ndarray,
    genes: np.ndarray,
) -> sp.csr_matrix | np.ndarray:
    """Apply recorded transformations to a block whose rows are the dataset cells ``cells``
    and whose columns are the dataset genes ``genes``, in scanpy's dtypes and order.

    Parameters
    ----------
    block
        CSR rows read from the dataset (or a dense block after a zero-centring scale).
    transforms
        In the order they were recorded.
    cells, genes
        Dataset positions of the block's rows and columns.

    Returns
    -------
    scipy.sparse.csr_matrix or numpy.ndarray
        Dense once a zero-centring :class:`Scale` has been applied, CSR otherwise.
    """
    for step in transforms:
        if isinstance(step, NormalizeTotal):
            if sp.issparse(block):
                block = _float(block).copy()
                divisors = step.divisors[cells].astype(block.dtype, copy=False)
                block.data /= np.repeat(divisors, np.diff(block.indptr))
            else:
                block = block / step.divisors[cells].astype(block.dtype)[:, None]
        elif isinstance(step, Log1p):
            if sp.issparse(block):
                block = _float(block, np.float64).copy()
                block.data = np.log1p(block.data)
                if step.base is not None:
                    block.data /= np.log(step.base)
            else:
                block = np.log1p(block)
                if step.base is not None:
                    block /= np.log(step.base)
        elif isinstance(step, Scale):
            block = _scale(block, step, genes)
        else:
            raise TypeError(f"unknown transformation {step!r}")
    return block


def _scale(
    block: sp.csr_matrix | np.ndarray, step: Scale, genes: np.ndarray
) -> sp.csr_matrix | np.ndarray:
    std = step.std[genes]
    if step.zero_center:
        if sp.issparse(block):
            # scanpy's sparse - mean gives float64, a dense array keeps its float dtype
            dense = block.toarray().astype(np.result_type(block.dtype, step.mean.dtype))
        else:
            dense = np.array(block, dtype=np.result_type(block.dtype, np.float32))
        dense -= step.mean[genes]
        dense /= std
        if step.max_value is not None:
            np.clip(dense, -step.max_value, step.max_value, out=dense)
        return dense
    if sp.issparse(block):
        block = _float(block, np.float64).copy()
        block.data /= std[block.indices]
        if step.max_value is not None:
            np.minimum(block.data, step.max_value, out=block.data)
        return block
    dense = block / std
    if step.max_value is not None:
        np.minimum(dense, step.max_value, out=dense)
    return dense


def _dense_after(transforms: tuple[Transform, ...]) -> bool:
    return any(isinstance(t, Scale) and t.zero_center for t in transforms)


# ---------------------------------------------------------------------------------------------
# X and layers
# ---------------------------------------------------------------------------------------------


class LazyExpressionMatrix:
    """X (or a layer) of a view: nothing is read until ``compute()``, ``toarray()`` or a
    reduction.

    Examples
    --------
    >>> adata = read_slaf("pbmc.slaf")                                   # doctest: +SKIP
    >>> adata.X[:100].compute()                                          # doctest: +SKIP
    <100x765 sparse matrix of type '<class 'numpy.float32'>' ...>
    >>> adata.X.mean(axis=0).shape                                       # doctest: +SKIP
    (1, 765)
    """

    def __init__(
        self,
        dataset: _Dataset,
        cells: Positions,
        genes: Positions,
        layer: str | None = None,
        transforms: tuple[Transform, ...] = (),
    ) -> None:
        self._dataset = dataset
        self._cells = cells
        self._genes = genes
        self.layer = layer
        #: slaf.pp's recorded transformations, applied to every block read
        self.transforms = tuple(transforms)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_obs, n_vars)`` of the selection."""
        n_cells, n_genes = self._dataset.array.shape
        return _count(self._cells, n_cells), _count(self._genes, n_genes)

    @property
    def ndim(self) -> int:
        """2."""
        return 2

    @property
    def dtype(self) -> np.dtype:
        """The dtype ``compute()`` returns."""
        return self._read(np.zeros(0, dtype=np.int64)).dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> LazyExpressionMatrix:
        rows, cols = _split(key)
        obs_names = self._names(self._dataset.obs.index, self._cells)
        var_names = self._names(self._dataset.var.index, self._genes)
        return LazyExpressionMatrix(
            self._dataset,
            _compose(self._cells, _positions(rows, obs_names, "cell")),
            _compose(self._genes, _positions(cols, var_names, "gene")),
            self.layer,
            self.transforms,
        )

    @staticmethod
    def _names(index: pd.Index, positions: Positions) -> pd.Index:
        return index if positions is None else index[positions]

    def _read(self, cells: slice | np.ndarray | None) -> sp.csr_matrix | np.ndarray:
        """Rows ``cells`` (dataset positions: ``None`` for all, a slice or an array) of the
        selected genes, with the recorded transformations applied."""
        block = self._dataset.array.get_submatrix(
            cells, _selector(self._genes), layer=self.layer, format="csr"
        )
        if not self.transforms:
            return block
        n_cells, n_genes = self._dataset.array.shape
        if cells is None:
            rows = np.arange(n_cells, dtype=np.int64)
        elif isinstance(cells, slice):
            rows = np.arange(n_cells, dtype=np.int64)[cells]
        else:
            rows = np.asarray(cells, dtype=np.int64)
        genes = np.arange(n_genes, dtype=np.int64) if self._genes is None else self._genes
        return apply_transforms(block, self.transforms, rows, genes)

    def compute(self, fragments: bool | None = None) -> sp.csr_matrix:
        """Read the selection as a CSR matrix (only the selected cells' rows are read).

        Parameters
        ----------
        fragments
            Accepted for slafdb's signature.

        Returns
        -------
        scipy.sparse.csr_matrix or numpy.ndarray
            ``n_obs × n_vars``, rows and columns in selection order, with ``slaf.pp``'s
            recorded transformations applied (a dense array after a zero-centring
            ``slaf.pp.scale``, as scanpy gives).
        """
        ignore_tuning("LazyExpressionMatrix.compute", fragments=fragments)
        return self._read(_selector(self._cells))

    def toarray(self) -> np.ndarray:
        """The selection as a dense array."""
        out = self.compute()
        return out.toarray() if sp.issparse(out) else out

    def todense(self) -> np.matrix:
        """The selection as a dense ``numpy.matrix`` (as scipy's ``todense``)."""
        return np.asmatrix(self.toarray())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        dense = self.toarray()
        return dense if dtype is None else dense.astype(dtype)

    def chunks(self) -> Iterator[sp.csr_matrix | np.ndarray]:
        """The selection as consecutive row blocks (a few million values each).

        Yields
        ------
        scipy.sparse.csr_matrix or numpy.ndarray
            Rows ``[k, k + len(block))`` of the selection, in order, transformed as
            :meth:`compute` (dense after a zero-centring ``slaf.pp.scale``); the next block
            is read while the caller works on this one.
        """
        n_cells, n_genes = self.shape
        per_cell = self._dataset.values_per_cell
        if _dense_after(self.transforms):
            per_cell = max(per_cell, float(n_genes))
        step = max(1, int(_VALUES_PER_CHUNK / max(1.0, per_cell)))
        spans = [
            slice(lo, min(n_cells, lo + step))
            if self._cells is None
            else self._cells[lo : min(n_cells, lo + step)]
            for lo in range(0, n_cells, step)
        ]
        # The next block is read in a background thread while the caller works on this one
        # (the read and numpy both release the GIL for long stretches).
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._read, spans[0]) if spans else None
            for following in [*spans[1:], None]:
                block = pending.result()
                pending = None if following is None else pool.submit(self._read, following)
                yield block

    def _moments(self, axis: int | None, power: int) -> list[np.ndarray]:
        """Sums of x**p for p = 1..power along ``axis`` (float64), streamed."""
        n_cells, n_genes = self.shape
        width = {0: n_genes, 1: n_cells, None: 1}[axis]
        sums = [np.zeros(width) for _ in range(power)]
        row = 0
        for block in self.chunks():
            if not sp.issparse(block):
                self._dense_moments(block, axis, sums, row)
                row += block.shape[0]
                continue
            values = block.data.astype(np.float64)
            for p in range(power):
                weights = values ** (p + 1)
                if axis == 0:
                    sums[p] += np.bincount(block.indices, weights=weights, minlength=n_genes)
                elif axis == 1:
                    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
                    sums[p][row : row + block.shape[0]] = np.bincount(
                        rows, weights=weights, minlength=block.shape[0]
                    )
                else:
                    sums[p] += weights.sum()
            row += block.shape[0]
        return sums

    @staticmethod
    def _dense_moments(
        block: np.ndarray, axis: int | None, sums: list[np.ndarray], row: int
    ) -> None:
        values = block.astype(np.float64)
        for p, total in enumerate(sums):
            powered = values ** (p + 1)
            if axis == 0:
                total += powered.sum(axis=0)
            elif axis == 1:
                total[row : row + len(block)] = powered.sum(axis=1)
            else:
                total += powered.sum()

    @staticmethod
    def _check_axis(axis: int | None) -> int | None:
        if axis is not None and axis not in (0, 1, -1, -2):
            raise ValueError(f"axis must be None, 0 or 1, not {axis!r}")
        return None if axis is None else axis % 2

    def _shaped(self, values: np.ndarray, axis: int | None) -> Any:
        # Shapes as scipy's (and slafdb's): (1, n_vars) for axis 0, (n_obs, 1) for axis 1.
        if axis is None:
            return float(values[0])
        return values.reshape((1, -1) if axis == 0 else (-1, 1))

    def sum(self, axis: int | None = None, fragments: bool | None = None) -> Any:
        """Sum over all values (``axis=None``), per gene (``0``) or per cell (``1``).

        Streamed over cell chunks; float64.

        Parameters
        ----------
        axis
            ``None``, ``0`` or ``1``.
        fragments
            Accepted for slafdb's signature.

        Returns
        -------
        float or numpy.ndarray
            A float, or an array of shape ``(1, n_vars)`` / ``(n_obs, 1)``.

        Examples
        --------
        >>> read_slaf("pbmc.slaf").X.sum(axis=1).shape                      # doctest: +SKIP
        (700, 1)
        """
        ignore_tuning("LazyExpressionMatrix.sum", fragments=fragments)
        axis = self._check_axis(axis)
        return self._shaped(self._moments(axis, 1)[0], axis)

    def _count_along(self, axis: int | None) -> int:
        n_cells, n_genes = self.shape
        return {0: n_cells, 1: n_genes, None: n_cells * n_genes}[axis]

    def mean(self, axis: int | None = None, fragments: bool | None = None) -> Any:
        """Mean over all values, per gene (``axis=0``) or per cell (``axis=1``), zeros
        included. Streamed; float64. Shapes as :meth:`sum`.

        Examples
        --------
        >>> read_slaf("pbmc.slaf").X.mean(axis=0).shape                     # doctest: +SKIP
        (1, 765)
        """
        ignore_tuning("LazyExpressionMatrix.mean", fragments=fragments)
        axis = self._check_axis(axis)
        total = self._moments(axis, 1)[0]
        return self._shaped(total / max(1, self._count_along(axis)), axis)

    def var(self, axis: int | None = None, ddof: int = 0) -> Any:
        """Variance (numpy's definition, ``ddof=0`` by default), zeros included. Streamed in
        one pass of float64 sums. Shapes as :meth:`sum`.

        Examples
        --------
        >>> read_slaf("pbmc.slaf").X.var(axis=0).shape                      # doctest: +SKIP
        (1, 765)
        """
        axis = self._check_axis(axis)
        n = self._count_along(axis)
        total, squares = self._moments(axis, 2)
        mean = total / max(1, n)
        variance = (squares - n * mean**2) / max(1, n - ddof)
        return self._shaped(np.maximum(variance, 0.0), axis)

    def std(self, axis: int | None = None, ddof: int = 0) -> Any:
        """Standard deviation: the square root of :meth:`var`."""
        return np.sqrt(self.var(axis, ddof))

    def __repr__(self) -> str:
        what = "X" if self.layer is None else f"layer {self.layer!r}"
        n_obs, n_vars = self.shape
        return f"LazyExpressionMatrix({what}, {n_obs} × {n_vars}; not read)"


class _ReadOnly(Mapping[str, Any]):
    """obsm/varm/obsp/varp/layers of a view: values are cut to the view on access. With
    ``write``/``remove`` (layers of the LazyAnnData ``read_slaf`` returned), assignment and
    ``del`` go to them."""

    def __init__(
        self, keys: list[str], get: Any, what: str, write: Any = None, remove: Any = None
    ) -> None:
        self._keys = list(keys)
        self._get = get
        self._what = what
        self._write = write
        self._remove = remove

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(f"no {self._what} key {key!r} (available: {self._keys or 'none'})")
        return self._get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __setitem__(self, key: str, value: Any) -> None:
        if self._write is None:
            raise NotImplementedError(
                f"{self._what} of a view or copy can't be changed; assign on the LazyAnnData "
                "read_slaf returned, or use to_memory() for an anndata.AnnData"
            )
        self._write(key, value)

    def __delitem__(self, key: str) -> None:
        if self._remove is None:
            raise NotImplementedError(
                f"{self._what} of a view or copy can't be changed; use the LazyAnnData "
                "read_slaf returned, or to_memory() for an anndata.AnnData"
            )
        if key not in self._keys:
            raise KeyError(f"no {self._what} key {key!r} (available: {self._keys or 'none'})")
        self._remove(key)

    def __repr__(self) -> str:
        return f"{self._what}: {', '.join(self._keys) or '(none)'}"


class _Overlay(MutableMapping[str, Any]):
    """obsm/varm of a view: the stored arrays (cut to the view) plus arrays ``slaf.pp`` added
    in memory. Assignment writes back through ``owner`` (see ``_write_back``); on a copy
    (``owner`` None) it stays in memory, as on anndata's copies."""

    def __init__(
        self,
        stored: _ReadOnly,
        added: dict[str, Any],
        n_rows: int,
        what: str,
        owner: LazyAnnData | None,
    ) -> None:
        self._stored = stored
        self._added = added
        self._n_rows = n_rows
        self._what = what
        self._owner = owner

    def __getitem__(self, key: str) -> Any:
        if key in self._added:
            return self._added[key]
        if key in self._stored:
            return self._stored[key]
        raise KeyError(f"no {self._what} key {key!r} (available: {list(self) or 'none'})")

    def __iter__(self) -> Iterator[str]:
        yield from (k for k in self._stored if k not in self._added)
        yield from self._added

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __setitem__(self, key: str, value: Any) -> None:
        if len(value) != self._n_rows:
            raise ValueError(
                f"{self._what}[{key!r}] needs {self._n_rows} rows (one per "
                f"{'cell' if self._what == 'obsm' else 'gene'}), not {len(value)}"
            )
        if self._owner is None:
            self._added[key] = value
            return
        what = f"{self._what}[{key!r}]"
        _write_back.check_whole(self._owner, what)
        _, arrow = _write_back.embedding_array(value, self._n_rows, what)
        _write_back.set_annotation(self._owner, self._what, key, arrow)
        self._added.pop(key, None)

    def __delitem__(self, key: str) -> None:
        if key in self._added:
            del self._added[key]
        elif key in self._stored:
            if self._owner is None:
                raise NotImplementedError(
                    f"the stored {self._what} {key!r} can't be deleted from a copy; use the "
                    "LazyAnnData read_slaf returned, or to_memory()"
                )
            _write_back.check_whole(self._owner, f"del {self._what}[{key!r}]")
            _write_back.delete(self._owner, self._what, key)
        else:
            raise KeyError(f"no {self._what} key {key!r}")

    def __repr__(self) -> str:
        return f"{self._what}: {', '.join(self) or '(none)'}"


def _cut_rows(values: dict[str, Any], rows: Positions) -> dict[str, Any]:
    return dict(values) if rows is None else {k: v[rows] for k, v in values.items()}


# ---------------------------------------------------------------------------------------------
# LazyAnnData
# ---------------------------------------------------------------------------------------------


class LazyAnnData:
    """An AnnData-shaped view of a SLAF dataset; slicing reads nothing.

    ``obs`` / ``var`` are pandas DataFrames indexed by ``obs_names`` / ``var_names`` (read
    once per dataset); ``X`` and ``layers`` are :class:`LazyExpressionMatrix`; ``obsm``,
    ``varm``, ``obsp``, ``varp`` give arrays cut to the view; ``to_memory()`` makes a real
    ``anndata.AnnData`` of the view.

    Parameters
    ----------
    slaf_array
        An open :class:`~slaf.array.SLAFArray`, or a dataset path / URI.
    backend
        Accepted for slafdb's signature.
    storage_options
        Object-store options when ``slaf_array`` is a path.

    Examples
    --------
    >>> from slaf.integrations import read_slaf
    >>> adata = read_slaf("pbmc.slaf")                                   # doctest: +SKIP
    >>> subset = adata[adata.obs.cell_type == "B cells", :]              # doctest: +SKIP
    >>> subset[:10].X.compute()                                          # doctest: +SKIP
    """

    def __init__(
        self,
        slaf_array: SLAFArray | str | os.PathLike[str],
        backend: str = "auto",
        storage_options: dict[str, str] | None = None,
    ) -> None:
        if backend != "auto":
            ignore_tuning("LazyAnnData", backend=backend)
        self.backend = backend
        if not isinstance(slaf_array, SLAFArray):
            slaf_array = SLAFArray(slaf_array, storage_options)
        self._dataset = _Dataset(slaf_array)
        self._cells: Positions = None
        self._genes: Positions = None
        self._transforms: tuple[Transform, ...] = ()
        # obs/var come from (frame, positions in it): the dataset's frames at first, the
        # parent's own frames (with columns slaf.pp added) for views made after.
        self._obs_from: tuple[pd.DataFrame, Positions] | None = None
        self._var_from: tuple[pd.DataFrame, Positions] | None = None
        self._obsm_added: dict[str, Any] = {}
        self._varm_added: dict[str, Any] = {}
        self._uns_own: dict[str, Any] | None = None
        # "root": read_slaf's object, writes assignments back; "view": a selection, whose
        # assignments raise; "copy": changes stay in memory (see _write_back).
        self._origin = "root"

    def _view(self, cells: Positions, genes: Positions) -> LazyAnnData:
        """A view selecting ``cells`` / ``genes`` (positions within this view)."""
        view = object.__new__(LazyAnnData)
        view.backend = self.backend
        view._dataset = self._dataset
        view._cells = _compose(self._cells, cells)
        view._genes = _compose(self._genes, genes)
        view._transforms = self._transforms
        view._obs_from = self._frame_source("obs", cells)
        view._var_from = self._frame_source("var", genes)
        view._obsm_added = _cut_rows(self._obsm_added, cells)
        view._varm_added = _cut_rows(self._varm_added, genes)
        view._uns_own = None if self._uns_own is None else dict(self._uns_own)
        view._origin = "copy" if self._origin == "copy" else "view"
        return view

    def _frame_source(self, which: str, inner: Positions) -> tuple[pd.DataFrame, Positions]:
        if which in self.__dict__:  # this object's own frame, maybe with added columns
            return self.__dict__[which], inner
        source = self._obs_from if which == "obs" else self._var_from
        if source is None:
            full = self._dataset.obs if which == "obs" else self._dataset.var
            return full, _compose(self._cells if which == "obs" else self._genes, inner)
        return source[0], _compose(source[1], inner)

    def _frame(self, which: str) -> pd.DataFrame:
        # Called by the cached obs/var properties, so only before this object has its own.
        frame, rows = self._frame_source(which, None)
        # A shallow copy: columns added to this object's frame stay out of its parent's.
        return self._own((frame if rows is None else frame.iloc[rows]).copy(deep=False), which)

    def _own(self, frame: pd.DataFrame, which: str) -> pd.DataFrame:
        """``frame`` as this object's obs/var: assignments to it write back (or raise on a
        view) unless this is a copy."""
        if self._origin == "copy":
            return frame
        return _write_back.StoredFrame.of(frame, self, which)

    @property
    def _writes_back(self) -> bool:
        return self._origin == "root"

    def _keep(self, which: str, key: str, value: Any) -> None:
        """Add ``value`` as ``obs``/``var`` column or ``obsm``/``varm`` key in memory only
        (``slaf.pp``'s results, as scanpy keeps them on the in-memory object)."""
        if which in ("obs", "var"):
            frame = getattr(self, which)  # a name of its own: pandas warns on temporaries
            # One column at a time: pandas sets several through the frame's own __setitem__,
            # which would write them back.
            for name, column in (
                value.items() if isinstance(value, pd.DataFrame) else [(key, value)]
            ):
                pd.DataFrame.__setitem__(frame, name, column)
        else:
            n = self.n_obs if which == "obsm" else self.n_vars
            if len(value) != n:
                raise ValueError(f"{which}[{key!r}] needs {n} rows, not {len(value)}")
            (self._obsm_added if which == "obsm" else self._varm_added)[key] = value

    # -- slaf.pp's in-place changes ----------------------------------------------------------

    def _inplace_subset_obs(self, keep: Any) -> None:
        """Narrow this object to the cells ``keep`` (a mask or positions within the view),
        keeping obs columns, added obsm and recorded transformations (as AnnData's)."""
        rows = _positions(keep, self.obs_names, "cell")
        obs = self.obs
        self._cells = _compose(self._cells, rows)
        self.obs = obs if rows is None else self._own(obs.iloc[rows].copy(deep=False), "obs")
        self._obsm_added = _cut_rows(self._obsm_added, rows)

    def _inplace_subset_var(self, keep: Any) -> None:
        """Narrow this object to the genes ``keep`` (a mask or positions within the view)."""
        cols = _positions(keep, self.var_names, "gene")
        var = self.var
        self._genes = _compose(self._genes, cols)
        self.var = var if cols is None else self._own(var.iloc[cols].copy(deep=False), "var")
        self._varm_added = _cut_rows(self._varm_added, cols)

    def _add_transform(self, step: Transform) -> None:
        """Record a transformation of X, applied to every block read from now on."""
        self._transforms = (*self._transforms, step)

    @property
    def transforms(self) -> tuple[Transform, ...]:
        """The transformations ``slaf.pp`` recorded on X, in order."""
        return self._transforms

    @property
    def slaf(self) -> SLAFArray:
        """The underlying :class:`~slaf.array.SLAFArray` (as in slafdb)."""
        return self._dataset.array

    @property
    def is_view(self) -> bool:
        """``True`` when this is a selection of the dataset rather than all of it."""
        return self._cells is not None or self._genes is not None

    # -- shape and names ---------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_obs, n_vars)``."""
        n_cells, n_genes = self._dataset.array.shape
        return _count(self._cells, n_cells), _count(self._genes, n_genes)

    @property
    def n_obs(self) -> int:
        """Number of cells in the view."""
        return self.shape[0]

    @property
    def n_vars(self) -> int:
        """Number of genes in the view."""
        return self.shape[1]

    def __len__(self) -> int:
        return self.n_obs

    @cached_property
    def obs(self) -> pd.DataFrame:
        """Cell annotations of the view, indexed by ``obs_names`` (a pandas DataFrame)."""
        return self._frame("obs")

    @cached_property
    def var(self) -> pd.DataFrame:
        """Gene annotations of the view, indexed by ``var_names`` (a pandas DataFrame)."""
        return self._frame("var")

    @property
    def obs_names(self) -> pd.Index:
        """Cell names (``cell_id``) of the view."""
        return self.obs.index

    @property
    def var_names(self) -> pd.Index:
        """Gene names (``gene_id``) of the view."""
        return self.var.index

    def obs_keys(self) -> list[str]:
        """Columns of :attr:`obs`."""
        return list(self.obs.columns)

    def var_keys(self) -> list[str]:
        """Columns of :attr:`var`."""
        return list(self.var.columns)

    # -- matrices ----------------------------------------------------------------------------

    @property
    def X(self) -> LazyExpressionMatrix:
        """The expression matrix of the view, lazy, with ``slaf.pp``'s transformations."""
        return LazyExpressionMatrix(
            self._dataset, self._cells, self._genes, transforms=self._transforms
        )

    @property
    def layers(self) -> Mapping[str, LazyExpressionMatrix]:
        """The dataset's layers, each a lazy matrix over the view. On the LazyAnnData
        ``read_slaf`` returned, ``layers[key] = matrix`` (lazy, sparse or dense, the shape of X)
        and ``del layers[key]`` write back to the dataset."""

        def write(key: str, value: Any) -> None:
            _write_back.check_whole(self, f"layers[{key!r}]")
            _write_back.set_layer(self, key, value)

        def remove(key: str) -> None:
            _write_back.check_whole(self, f"del layers[{key!r}]")
            _write_back.delete(self, "layers", key)

        writable = self._origin != "copy"
        return _ReadOnly(
            self._dataset.array.layer_names,
            lambda k: LazyExpressionMatrix(self._dataset, self._cells, self._genes, k),
            "layers",
            write if writable else None,
            remove if writable else None,
        )

    def _cut(self, source: Mapping[str, Any], rows: Positions, both: bool) -> Any:
        def get(key: str) -> Any:
            value = source[key]
            if rows is None:
                return value
            value = value[rows]
            return value[:, rows] if both else value

        return _ReadOnly(list(source), get, "")

    @property
    def obsm(self) -> MutableMapping[str, np.ndarray]:
        """Cell embeddings, rows cut to the view. ``slaf.pp``'s (``X_pca``) stay in memory on
        this object; a user's assignment writes back to the dataset (see ``layers``)."""
        stored = self._named(self._cut(self.slaf.obsm, self._cells, False), "obsm")
        owner = None if self._origin == "copy" else self
        return _Overlay(stored, self._obsm_added, self.n_obs, "obsm", owner)

    @property
    def varm(self) -> MutableMapping[str, np.ndarray]:
        """Gene embeddings, rows cut to the view; as :attr:`obsm`."""
        stored = self._named(self._cut(self.slaf.varm, self._genes, False), "varm")
        owner = None if self._origin == "copy" else self
        return _Overlay(stored, self._varm_added, self.n_vars, "varm", owner)

    @property
    def obsp(self) -> Mapping[str, sp.csr_matrix]:
        """Pairwise cell matrices (CSR), rows and columns cut to the view."""
        return self._named(self._cut(self.slaf.obsp, self._cells, True), "obsp")

    @property
    def varp(self) -> Mapping[str, sp.csr_matrix]:
        """Pairwise gene matrices (CSR), rows and columns cut to the view."""
        return self._named(self._cut(self.slaf.varp, self._genes, True), "varp")

    @staticmethod
    def _named(mapping: _ReadOnly, what: str) -> _ReadOnly:
        mapping._what = what
        return mapping

    @property
    def uns(self) -> dict[str, Any]:
        """Unstructured metadata: ``uns.json``'s entries plus those added in memory (by
        ``slaf.pp``: ``log1p``, ``hvg``, ``pca``), which are not written to the dataset."""
        if self._uns_own is None:
            self._uns_own = dict(self.slaf.uns)
        return self._uns_own

    @property
    def raw(self) -> None:
        """``None``: SLAF stores a source's ``raw`` as the layer ``"raw"`` (see ``layers``)."""
        return None

    # -- selection ---------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> LazyAnnData:
        rows, cols = _split(key)
        cells = _positions(rows, self.obs_names, "cell") if rows is not None else None
        genes = _positions(cols, self.var_names, "gene") if cols is not None else None
        return self._view(cells, genes)

    def copy(self) -> LazyAnnData:
        """A lazy view of the same selection (nothing is read or copied).

        Returns
        -------
        LazyAnnData
            With its own obs/var frames, so changing one does not change the other.
        """
        view = self._view(None, None)
        view._origin = "copy"
        view.obs = pd.DataFrame(self.obs.copy())
        view.var = pd.DataFrame(self.var.copy())
        return view

    # -- materialising -----------------------------------------------------------------------

    def to_memory(self) -> Any:
        """Read the view into a real ``anndata.AnnData``.

        X and layers as CSR; obs, var, obsm, varm, obsp, varp cut to the view; uns copied.

        Returns
        -------
        anndata.AnnData

        Examples
        --------
        >>> adata = read_slaf("pbmc.slaf")                                   # doctest: +SKIP
        >>> small = adata[:100].to_memory()                                  # doctest: +SKIP
        >>> import scanpy as sc; sc.pp.normalize_total(small)                # doctest: +SKIP
        """
        import anndata

        return anndata.AnnData(
            X=self.X.compute(),
            obs=self.obs.copy(),
            var=self.var.copy(),
            layers={k: v.compute() for k, v in self.layers.items()},
            obsm={k: np.array(v) for k, v in self.obsm.items()},
            varm={k: np.array(v) for k, v in self.varm.items()},
            obsp=dict(self.obsp.items()),
            varp=dict(self.varp.items()),
            uns=_copy.deepcopy(self.uns),
        )

    def compute(self) -> Any:
        """slafdb's name for :meth:`to_memory`."""
        return self.to_memory()

    def get_expression_data(self) -> sp.csr_matrix:
        """slafdb's name for ``X.compute()``."""
        return self.X.compute()

    def write_h5ad(self, filename: str | os.PathLike[str], **kwargs: Any) -> None:
        """Write the view as an h5ad file (through :meth:`to_memory`).

        Parameters
        ----------
        filename
            Where to write.
        **kwargs
            Passed to ``anndata.AnnData.write_h5ad`` (``compression=...``).
        """
        self.to_memory().write_h5ad(filename, **kwargs)

    write = write_h5ad

    def __repr__(self) -> str:
        n_obs, n_vars = self.shape
        kind = "View of LazyAnnData" if self.is_view else "LazyAnnData"
        lines = [f"{kind} object with n_obs × n_vars = {n_obs} × {n_vars}"]
        lines.append(f"    backed at {self.slaf.slaf_path!r}")
        for name, keys in (
            ("obs", self.obs.columns),
            ("var", self.var.columns),
            ("uns", list(self.uns)),
            ("obsm", list(self.obsm)),
            ("varm", list(self.varm)),
            ("layers", self.slaf.layer_names),
            ("obsp", list(self.slaf.obsp)),
            ("varp", list(self.slaf.varp)),
        ):
            if len(keys):
                lines.append(f"    {name}: {', '.join(repr(str(k)) for k in keys)}")
        return "\n".join(lines)


def read_slaf(
    filename: str | os.PathLike[str],
    backend: str = "auto",
    storage_options: dict[str, str] | None = None,
) -> LazyAnnData:
    """Open a SLAF dataset as a :class:`LazyAnnData` (nothing but ``config.json`` is read).

    Parameters
    ----------
    filename
        Dataset directory or URI (``s3://bucket/data.slaf``).
    backend
        Accepted for slafdb's signature.
    storage_options
        Object-store options passed to Lance.

    Returns
    -------
    LazyAnnData

    Examples
    --------
    >>> from slaf.integrations import read_slaf
    >>> adata = read_slaf("data/pbmc.slaf")                              # doctest: +SKIP
    >>> subset = adata[(adata.obs.cell_type == "CD8 Naive") & (adata.obs.donor == "Donor10"), :]
    ... # doctest: +SKIP
    >>> expression = subset[:10, :].X.compute()                          # doctest: +SKIP
    """
    return LazyAnnData(SLAFArray(filename, storage_options), backend=backend)
