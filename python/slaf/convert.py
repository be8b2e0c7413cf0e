"""Conversion of h5ad files and 10x outputs into SLAF datasets.

Inputs are read in bounded memory: X and layers one block of cells at a time (CSR row slices
through ``indptr``, dense row blocks), obs/var/obsm/varm/obsp/varp/uns whole (they are small).
Matrices not stored by cells (CSC X or layers, 10x MTX files) are first regrouped by cells
through a scratch file next to the output (about the size of the entries; removed afterwards).
Arrays reach the Rust core in their own dtypes without a copy (numpy → pyarrow → Arrow C data
interface). The core does the writing: COO rows, ``cell_start_index``, statistics, config.json,
and the temporary-directory-then-rename that keeps a failed conversion from leaving a dataset.

What is stored where:

* X → ``expression.lance``; values are uint16 when every value of every input is an integer in
  0..65535, else float32. This is checked on each block as it is written (no separate pass);
  the first value that does not fit restarts the conversion as float32.
* layers → ``layers.lance`` (float32); ``adata.raw.X`` becomes the layer ``"raw"`` when
  ``raw.var_names`` equal ``var_names`` (otherwise raw cannot be stored on the gene axis of
  the dataset: a warning says so and raw is skipped).
* obs/var → ``cells.lance``/``genes.lance``: categoricals become strings, ``.`` in column names
  becomes ``_``; obsm/varm → ``fixed_size_list<float32>`` columns; obsp/varp → pairwise tables;
  uns → ``uns.json`` (arrays as lists, NaN as null).
* 10x: obs index = barcodes; var index = gene symbols made unique (as scanpy), columns
  ``gene_ids`` and, for v3, ``feature_types`` (``genome`` only when several genomes are
  present, so a v3 MTX folder and its ``.h5`` give identical datasets).

Examples
--------
>>> import slaf
>>> slaf.convert("pbmc.h5ad", "pbmc.slaf")                       # doctest: +SKIP
'pbmc.slaf'
>>> slaf.convert(["a.h5ad", "b.h5ad"], "ab.slaf", overwrite=True)  # doctest: +SKIP
'ab.slaf'
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from slaf import _native
from slaf._progress import bar as progress_bar
from slaf._progress import rows_callback
from slaf.errors import DatasetNotFoundError, InvalidArgumentError

#: Input formats ``convert`` understands.
FORMATS = ("h5ad", "10x_mtx", "10x_h5")
#: Cells per chunk read from the input.
DEFAULT_CHUNK_SIZE = 2000
#: Entries per block read from a CSC matrix or an MTX file, and about per row band of their
#: scratch copy (bounds memory where the source is not stored by rows).
_BAND_ENTRIES = 1 << 23

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------------------------
# Matrices read by rows


_Rows = tuple[np.ndarray, np.ndarray, np.ndarray]
"""CSR parts of a block of rows: ``indptr`` (may start above 0), ``indices``, ``data``, in the
source's own dtypes (the writer reads them in place)."""


class _Matrix:
    """A cells × genes matrix read one block of rows at a time."""

    shape: tuple[int, int]

    def rows(self, start: int, stop: int) -> _Rows:
        raise NotImplementedError

    def close(self) -> None:
        """Releases what reading needed (scratch files)."""


def _parts(m: sp.csr_matrix) -> _Rows:
    return m.indptr, m.indices, m.data


class _InMemory(_Matrix):
    def __init__(self, matrix: Any) -> None:
        self.m = sp.csr_matrix(matrix)
        self.shape = self.m.shape

    def rows(self, start: int, stop: int) -> _Rows:
        lo, hi = int(self.m.indptr[start]), int(self.m.indptr[stop])
        return self.m.indptr[start : stop + 1], self.m.indices[lo:hi], self.m.data[lo:hi]


class _DirectReader:
    """Element ranges of a 1-D HDF5 dataset read straight from the file: one ``preadv`` per
    run of chunks stored back to back, instead of HDF5's per-chunk reads and copies (about
    twice as fast for the uncompressed, chunked arrays anndata writes).

    Only for what maps byte for byte onto numpy: an unfiltered, fully allocated contiguous or
    chunked dataset of plain integers or floats in a local file without a user block.
    ``of`` returns ``None`` for anything else, which is then read through h5py.
    """

    def __init__(self, path: str, offsets: np.ndarray, chunk: int, dtype: np.dtype) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.offsets, self.chunk, self.dtype = offsets, chunk, dtype
        nbytes = chunk * dtype.itemsize
        # Chunks that start a run (their predecessor does not end where they begin).
        starts = np.ones(len(offsets), dtype=bool)
        starts[1:] = offsets[1:] != offsets[:-1] + nbytes
        self.run_start = np.flatnonzero(starts)

    @classmethod
    def of(cls, dataset: Any) -> _DirectReader | None:
        import h5py

        try:
            f = dataset.file
            kind = dataset.id.get_type()
            plain = (
                dataset.ndim == 1
                and f.driver == "sec2"
                and f.userblock_size == 0
                and kind.get_class() in (h5py.h5t.INTEGER, h5py.h5t.FLOAT)
                and kind.get_size() == dataset.dtype.itemsize
                and kind.get_precision() == 8 * dataset.dtype.itemsize
                and kind.get_offset() == 0
                and dataset.id.get_create_plist().get_nfilters() == 0
                and dataset.dtype.kind in "iuf"
            )
            if not plain or dataset.external or len(dataset) == 0:
                return None
            n = len(dataset)
            if dataset.chunks is None:
                offset = dataset.id.get_offset()
                if offset is None:
                    return None
                return cls(f.filename, np.array([offset], dtype=np.int64), n, dataset.dtype)
            chunk = int(dataset.chunks[0])
            offsets = np.full(-(-n // chunk), -1, dtype=np.int64)

            def record(info: Any) -> None:
                if info.size == chunk * dataset.dtype.itemsize and info.filter_mask == 0:
                    offsets[info.chunk_offset[0] // chunk] = info.byte_offset

            dataset.id.chunk_iter(record)
            if (offsets < 0).any():
                return None  # unallocated (fill-value) or unusual chunks
            return cls(f.filename, offsets, chunk, dataset.dtype)
        except (AttributeError, OSError, ValueError, TypeError):
            return None

    def read(self, lo: int, hi: int, out: np.ndarray) -> None:
        """Elements ``lo:hi`` into ``out[: hi - lo]``."""
        size = self.dtype.itemsize
        target = memoryview(out[: hi - lo].view(np.uint8))
        first, last = lo // self.chunk, (hi - 1) // self.chunk
        # Runs that meet the chunks first..last, each read in one go.
        runs = self.run_start[
            np.searchsorted(self.run_start, first, side="right") - 1 : np.searchsorted(
                self.run_start, last, side="right"
            )
        ]
        done = 0
        for k, run in enumerate(runs):
            a = max(int(run), first)
            b = int(runs[k + 1]) - 1 if k + 1 < len(runs) else last
            start = max(lo, a * self.chunk)
            stop = min(hi, (b + 1) * self.chunk)
            position = int(self.offsets[a]) + (start - a * self.chunk) * size
            want = (stop - start) * size
            while want:
                got = os.preadv(self.fd, [target[done : done + want]], position)
                if got <= 0:
                    raise OSError(f"unexpected end of file reading {want} bytes")
                done, position, want = done + got, position + got, want - got

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _CsrRows(_Matrix):
    """CSR arrays in HDF5 (h5ad CSR X, 10x HDF5 matrices): rows are ``indptr`` slices.

    Rows are read into two buffers that are reused from one call to the next (no fresh
    memory, so no page faults, per block): what ``rows`` returns is valid until its next call.
    """

    def __init__(self, data: Any, indices: Any, indptr: Any, shape: tuple[int, int]) -> None:
        self.data, self.indices = data, indices
        self.indptr = np.asarray(indptr[:], dtype=np.int64)
        self.shape = (int(shape[0]), int(shape[1]))
        self._buffers: dict[str, np.ndarray] = {}
        self._direct: dict[str, _DirectReader | None] = {}

    def _read(self, name: str, source: Any, lo: int, hi: int) -> np.ndarray:
        if not hasattr(source, "read_direct") or hi == lo:
            return np.asarray(source[lo:hi])
        buffer = self._buffers.get(name)
        if buffer is None or len(buffer) < hi - lo:
            buffer = self._buffers[name] = np.empty(hi - lo, dtype=source.dtype)
        if name not in self._direct:
            self._direct[name] = _DirectReader.of(source)
        direct = self._direct[name]
        if direct is not None:
            direct.read(lo, hi, buffer)
        else:
            source.read_direct(buffer, np.s_[lo:hi], np.s_[0 : hi - lo])
        return buffer[: hi - lo]

    def close(self) -> None:
        for direct in self._direct.values():
            if direct is not None:
                direct.close()
        self._direct.clear()

    def rows(self, start: int, stop: int) -> _Rows:
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return (
            self.indptr[start : stop + 1],
            self._read("indices", self.indices, lo, hi),
            self._read("data", self.data, lo, hi),
        )


class _DenseRows(_Matrix):
    def __init__(self, dataset: Any) -> None:
        self.d = dataset
        self.shape = (int(dataset.shape[0]), int(dataset.shape[1]))

    def rows(self, start: int, stop: int) -> _Rows:
        return _parts(sp.csr_matrix(self.d[start:stop]))


class _HStack(_Matrix):
    """Matrices over the same cells side by side (10x v2 files with several genomes)."""

    def __init__(self, parts: list[_Matrix]) -> None:
        self.parts = parts
        self.shape = (parts[0].shape[0], sum(p.shape[1] for p in parts))

    def rows(self, start: int, stop: int) -> _Rows:
        blocks = []
        for p in self.parts:
            indptr, indices, data = p.rows(start, stop)
            shape = (stop - start, p.shape[1])
            blocks.append(sp.csr_matrix((data, indices, indptr - indptr[0]), shape=shape))
        return _parts(sp.hstack(blocks, format="csr"))

    def close(self) -> None:
        for p in self.parts:
            p.close()


_Block = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Entries in any order: ``rows``, ``cols``, ``values``."""


class _Banded(_Matrix):
    """Entries that do not come by rows (CSC columns, MTX lines), regrouped by rows through a
    scratch file: one pass over the source appends each block's entries to the row band they
    belong to; rows are then read band by band. Memory: about one block and one band
    (``_BAND_ENTRIES`` entries each); disk: one copy of the entries, removed by ``close``.

    Parameters
    ----------
    shape
        Cells × genes.
    nnz
        Number of entries (sizes the bands).
    blocks
        Returns a fresh iterator over the source's entries in blocks.
    scratch
        Folder for the scratch file (``None``: the system's temporary folder).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        nnz: int,
        blocks: Callable[[], Iterator[_Block]],
        scratch: Path | None,
    ) -> None:
        self.shape = shape
        self.band_rows = max(1, _BAND_ENTRIES * shape[0] // max(1, nnz))
        self._blocks = blocks
        self._scratch = scratch
        self._file: Path | None = None
        # Per band: (offset, entries, value dtype) of each segment in the scratch file.
        self._segments: list[list[tuple[int, int, np.dtype]]] | None = None
        self._band: tuple[int, _Rows] | None = None

    def _spill(self) -> None:
        if self._segments is not None:
            return
        n_bands = -(-self.shape[0] // self.band_rows)
        segments: list[list[tuple[int, int, np.dtype]]] = [[] for _ in range(n_bands)]
        # The process id in the name lets the next write here remove it if this one is killed.
        fd, name = tempfile.mkstemp(prefix=f".slaf-scratch-{os.getpid()}-", dir=self._scratch)
        self._file = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                for block in self._blocks():
                    self._append(f, block, segments)
        except BaseException:
            self.close()
            raise
        self._segments = segments

    def _append(self, f: Any, block: _Block, segments: list[list[Any]]) -> None:
        rows, cols, values = block
        if not len(values):
            return
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise InvalidArgumentError(f"a cell index is outside 0..{self.shape[0] - 1}")
        band = rows // self.band_rows
        order = np.argsort(band, kind="stable")
        band = band[order]
        first, last = int(band[0]), int(band[-1])
        bounds = np.searchsorted(band, np.arange(first, last + 2))
        for b, lo, hi in zip(range(first, last + 1), bounds[:-1], bounds[1:], strict=True):
            if hi == lo:
                continue
            take = order[lo:hi]
            segments[b].append((f.tell(), int(hi - lo), values.dtype))
            (rows[take] - b * self.band_rows).astype(np.int32).tofile(f)
            cols[take].astype(np.int32).tofile(f)
            values[take].tofile(f)

    def _read_band(self, b: int) -> _Rows:
        if self._band is not None and self._band[0] == b:
            return self._band[1]
        assert self._segments is not None and self._file is not None
        n_rows = min(self.band_rows, self.shape[0] - b * self.band_rows)
        rows, cols, values = [], [], []
        with open(self._file, "rb") as f:
            for offset, n, dtype in self._segments[b]:
                f.seek(offset)
                rows.append(np.fromfile(f, np.int32, n))
                cols.append(np.fromfile(f, np.int32, n))
                values.append(np.fromfile(f, dtype, n))
        if not rows:
            empty = (np.zeros(n_rows + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))
            self._band = (b, empty)
            return empty
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
        order = np.lexsort((c, r))
        indptr = np.zeros(n_rows + 1, np.int64)
        np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
        self._band = (b, (indptr, c[order], v[order]))
        return self._band[1]

    def rows(self, start: int, stop: int) -> _Rows:
        self._spill()
        parts, offset = [], 0
        indptrs = []
        for b in range(start // self.band_rows, (max(stop, start + 1) - 1) // self.band_rows + 1):
            first = b * self.band_rows
            indptr, indices, data = self._read_band(b)
            lo_row, hi_row = max(start, first) - first, min(stop, first + len(indptr) - 1) - first
            lo, hi = int(indptr[lo_row]), int(indptr[hi_row])
            indptrs.append(indptr[lo_row:hi_row] - lo + offset)
            parts.append((indices[lo:hi], data[lo:hi]))
            offset += hi - lo
        indptrs.append(np.array([offset], dtype=np.int64))
        return (
            np.concatenate(indptrs),
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )

    def close(self) -> None:
        self._band = None
        if self._file is not None:
            self._file.unlink(missing_ok=True)
            self._file = None
            self._segments = None


def _csc_blocks(node: Any, n_genes: int) -> Iterator[_Block]:
    """The entries of an HDF5 CSC matrix, a block of whole columns at a time."""
    indptr = np.asarray(node["indptr"][:], dtype=np.int64)
    c0 = 0
    while c0 < n_genes:
        limit = int(np.searchsorted(indptr, indptr[c0] + _BAND_ENTRIES, side="right")) - 1
        c1 = min(n_genes, max(c0 + 1, limit))
        lo, hi = int(indptr[c0]), int(indptr[c1])
        cols = np.repeat(np.arange(c0, c1, dtype=np.int32), np.diff(indptr[c0 : c1 + 1]))
        yield np.asarray(node["indices"][lo:hi]), cols, np.asarray(node["data"][lo:hi])
        c0 = c1


def _h5ad_matrix(node: Any, scratch: Path | None) -> _Matrix:
    import h5py

    if isinstance(node, h5py.Dataset):
        return _DenseRows(node)
    attrs = node.attrs
    encoding = attrs.get("encoding-type", attrs.get("h5sparse_format", ""))
    encoding = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
    shape = tuple(attrs.get("shape", attrs.get("h5sparse_shape", ())))
    if encoding in ("csr_matrix", "csr"):
        return _CsrRows(node["data"], node["indices"], node["indptr"], shape)
    if encoding in ("csc_matrix", "csc"):
        # Every row block touches every column: regrouped by rows through a scratch file.
        nnz = int(node["indptr"][-1])
        return _Banded(
            (int(shape[0]), int(shape[1])), nnz, lambda: _csc_blocks(node, int(shape[1])), scratch
        )
    raise InvalidArgumentError(f"unsupported matrix encoding {encoding!r} in {node.name}")


def _arrow(array: np.ndarray) -> Any:
    """A pyarrow array over ``array``'s memory (no copy for contiguous native-order numbers)."""
    import pyarrow as pa

    array = np.asarray(array)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return pa.array(np.ascontiguousarray(array).ravel())


# ---------------------------------------------------------------------------------------------
# Annotations to Arrow


def _column_name(name: Any) -> str:
    return str(name).replace(".", "_")


def _series_to_arrow(series: Any) -> Any:
    import pandas as pd
    import pyarrow as pa

    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = pa.array(series.cat.categories.astype(str).to_numpy(dtype=object))
        codes = series.cat.codes.to_numpy()
        indices = pa.array(codes, mask=codes < 0, type=pa.int32())
        return pa.DictionaryArray.from_arrays(indices, categories).dictionary_decode()
    if series.dtype == object:
        try:
            array = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = None
        if array is None or not (pa.types.is_string(array.type) or pa.types.is_null(array.type)):
            values = [None if _is_missing(v) else str(v) for v in series]
            return pa.array(values, type=pa.string())
        return array.cast(pa.string()) if pa.types.is_null(array.type) else array
    return pa.array(series, from_pandas=True)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _embedding(values: Any, n: int, what: str) -> Any:
    import pyarrow as pa

    if sp.issparse(values):
        values = values.toarray()
    array = np.asarray(values, dtype=np.float32).reshape(n, -1)
    flat = pa.array(np.ascontiguousarray(array).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, array.shape[1])


def _annotations(frame: Any, name_column: str, embeddings: dict[str, Any]) -> Any:
    """A pyarrow Table: the index as ``name_column``, the columns, then embeddings."""
    import pyarrow as pa

    columns: dict[str, Any] = {name_column: pa.array(frame.index.astype(str).to_numpy(object))}
    for name in frame.columns:
        key = _column_name(name)
        if key in columns:
            raise InvalidArgumentError(f"column {name!r} clashes with another column ({key!r})")
        columns[key] = _series_to_arrow(frame[name])
    for key, values in embeddings.items():
        if key in columns:
            raise InvalidArgumentError(f"embedding {key!r} clashes with an annotation column")
        columns[key] = _embedding(values, len(frame), key)
    return pa.table(columns)


def _jsonable(value: Any) -> Any:
    """``uns`` as JSON values: arrays as lists, numpy scalars as Python ones, NaN as None."""
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return {str(c): _jsonable(value[c].to_numpy()) for c in value.columns}
    if sp.issparse(value):
        return _jsonable(value.toarray())
    if isinstance(value, np.ndarray):
        if value.dtype.names:  # structured (record) arrays: one list per field
            return {name: _jsonable(value[name]) for name in value.dtype.names}
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


# ---------------------------------------------------------------------------------------------
# Sources


class _Source:
    """One input file: matrices read by rows, annotations whole."""

    path: str
    x: _Matrix
    layers: dict[str, _Matrix]
    obs: Any  # pandas DataFrame
    var: Any
    obsm: dict[str, Any]
    varm: dict[str, Any]
    obsp: dict[str, Any]
    varp: dict[str, Any]
    uns: dict[str, Any] | None

    def __init__(self, path: str) -> None:
        self.path = path
        self.layers, self.obsm, self.varm, self.obsp, self.varp = {}, {}, {}, {}, {}
        self.uns = None
        self._files: list[Any] = []

    @property
    def n_cells(self) -> int:
        return self.x.shape[0]

    @property
    def gene_ids(self) -> list[str]:
        return [str(g) for g in self.var.index]

    def obs_table(self) -> Any:
        return _annotations(self.obs, "cell_id", self.obsm)

    def var_table(self) -> Any:
        return _annotations(self.var, "gene_id", self.varm)

    def close(self) -> None:
        for m in [getattr(self, "x", None), *self.layers.values()]:
            if m is not None:
                m.close()
        for f in self._files:
            f.close()


def _h5ad(path: str, scratch: Path | None) -> _Source:
    import h5py
    from anndata.io import read_elem

    source = _Source(path)
    f = h5py.File(path, "r")
    source._files.append(f)
    source.x = _h5ad_matrix(f["X"], scratch)
    source.obs = read_elem(f["obs"])
    source.var = read_elem(f["var"])
    for group, target in (
        ("layers", source.layers),
        ("obsm", source.obsm),
        ("varm", source.varm),
        ("obsp", source.obsp),
        ("varp", source.varp),
    ):
        if group not in f:
            continue
        for key in f[group]:
            if group == "layers":
                target[key] = _h5ad_matrix(f[group][key], scratch)
                continue
            value = read_elem(f[group][key])
            if hasattr(value, "columns"):  # data-frame valued obsm/varm
                warnings.warn(
                    f"{path}: {group}[{key!r}] is a data frame; it is not stored",
                    stacklevel=3,
                )
                continue
            target[key] = value
    if "raw" in f:
        raw_var = read_elem(f["raw"]["var"])
        if list(map(str, raw_var.index)) == source.gene_ids:
            name = "raw" if "raw" not in source.layers else "raw_X"
            source.layers[name] = _h5ad_matrix(f["raw"]["X"], scratch)
        else:
            warnings.warn(
                f"{path}: adata.raw has {len(raw_var)} genes that differ from var "
                f"({source.x.shape[1]} genes); raw cannot be stored on the dataset's gene "
                "axis and is skipped",
                stacklevel=3,
            )
    if "uns" in f:
        source.uns = _jsonable(read_elem(f["uns"])) or None
    for name in ("obs", "var"):
        frame = getattr(source, name)
        n = source.x.shape[0 if name == "obs" else 1]
        if len(frame) != n:
            raise InvalidArgumentError(f"{path}: {name} has {len(frame)} rows, X has {n}")
    return source


def _unique(names: Sequence[str]) -> list[str]:
    """Names made unique the way anndata's ``var_names_make_unique`` does (``-1``, ``-2``)."""
    import pandas as pd
    from anndata.utils import make_index_unique

    return list(make_index_unique(pd.Index([str(n) for n in names])))


def _var_frame(ids: Sequence[str], names: Sequence[str], extra: dict[str, Any]) -> Any:
    import pandas as pd

    columns = {"gene_ids": [str(i) for i in ids], **extra}
    return pd.DataFrame(columns, index=pd.Index(_unique(names)))


def _decode(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values[:]]


def _tenx_h5(path: str) -> _Source:
    import h5py
    import pandas as pd

    source = _Source(path)
    f = h5py.File(path, "r")
    source._files.append(f)
    if "matrix" in f:  # CellRanger ≥ 3
        g = f["matrix"]
        n_genes, n_cells = (int(v) for v in g["shape"][:])
        source.x = _CsrRows(g["data"], g["indices"], g["indptr"], (n_cells, n_genes))
        features = g["features"]
        extra: dict[str, Any] = {"feature_types": _decode(features["feature_type"])}
        if "genome" in features and len(set(_decode(features["genome"]))) > 1:
            extra["genome"] = _decode(features["genome"])
        source.var = _var_frame(_decode(features["id"]), _decode(features["name"]), extra)
        source.obs = pd.DataFrame(index=pd.Index(_decode(g["barcodes"])))
        return source
    genomes = [k for k in f if isinstance(f[k], h5py.Group) and "indptr" in f[k]]
    if not genomes:
        raise InvalidArgumentError(f"{path} is not a 10x HDF5 matrix (no matrix group)")
    barcodes = _decode(f[genomes[0]]["barcodes"])
    parts, ids, names, genome_of = [], [], [], []
    for genome in genomes:
        g = f[genome]
        if _decode(g["barcodes"]) != barcodes:
            raise InvalidArgumentError(
                f"{path}: genome groups {genomes[0]!r} and {genome!r} hold different cells"
            )
        n_genes, n_cells = (int(v) for v in g["shape"][:])
        parts.append(_CsrRows(g["data"], g["indices"], g["indptr"], (n_cells, n_genes)))
        ids += _decode(g["genes"])
        names += _decode(g["gene_names"])
        genome_of += [genome] * n_genes
    source.x = parts[0] if len(parts) == 1 else _HStack(parts)
    source.var = _var_frame(ids, names, {"genome": genome_of} if len(genomes) > 1 else {})
    source.obs = pd.DataFrame(index=pd.Index(barcodes))
    return source


def _find(folder: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _open_text(path: Path) -> Any:
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _mtx_header(path: Path) -> tuple[list[str], tuple[int, int, int], int]:
    """The banner fields, ``(rows, columns, entries)`` and the number of header lines of a
    MatrixMarket file."""
    with _open_text(path) as handle:
        banner = handle.readline().split()
        lines = 1
        line = handle.readline()
        while line.startswith("%"):
            lines += 1
            line = handle.readline()
        size = tuple(int(v) for v in line.split())
    if len(banner) < 5 or banner[0] != "%%MatrixMarket" or len(size) != 3:
        raise InvalidArgumentError(f"{path} is not a MatrixMarket coordinate file")
    return [b.lower() for b in banner[1:5]], (size[0], size[1], size[2]), lines + 1


class _Tail:
    """A text handle that remembers the last character read (to tell a file cut mid-line)."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.last = handle, ""

    def read(self, size: int = -1) -> str:
        text = self.handle.read(size)
        if text:
            self.last = text[-1]
        return text


def _mtx_blocks(
    path: Path, field: str, skip: int, shape: tuple[int, int], nnz: int
) -> Iterator[_Block]:
    """The entries of a 10x (genes × cells) MTX file as cells × genes, a block of lines at a
    time. The file must hold exactly the ``nnz`` entries its header promises, each a whole
    line of in-range indices: a truncated file is an error, never half a matrix."""
    import pandas as pd

    n_genes, n_cells = shape
    columns = [0, 1] if field == "pattern" else [0, 1, 2]
    dtype = {0: np.int64, 1: np.int64, 2: np.int64 if field == "integer" else np.float64}
    seen = 0
    with _open_text(path) as raw:
        handle = _Tail(raw)
        try:
            reader = pd.read_csv(
                handle,
                sep=r"\s+",
                header=None,
                skiprows=skip,
                usecols=columns,
                dtype={k: dtype[k] for k in columns},
                chunksize=_BAND_ENTRIES,
            )
            for block in reader:
                if block.isna().to_numpy().any():
                    raise ValueError("a line has fewer fields than the format needs")
                genes = block[0].to_numpy() - 1
                cells = block[1].to_numpy() - 1
                for ids, n, what in ((genes, n_genes, "gene"), (cells, n_cells, "cell")):
                    if len(ids) and (ids.min() < 0 or ids.max() >= n):
                        raise ValueError(f"a {what} index is outside 1..{n}")
                values = (
                    block[2].to_numpy() if field != "pattern" else np.ones(len(block), np.uint8)
                )
                seen += len(block)
                yield cells, genes, values
        except (ValueError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            if isinstance(e, pd.errors.EmptyDataError) and nnz == 0:
                return
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InvalidArgumentError(
                f"{path} is malformed after {seen:,} entries: {reason}"
            ) from None
        if handle.last not in ("", "\n"):
            raise InvalidArgumentError(
                f"{path} ends in the middle of a line (the file is cut short?)"
            )
    if seen != nnz:
        raise InvalidArgumentError(
            f"{path}: the header promises {nnz:,} entries but the file holds {seen:,} (the file "
            "is truncated or its header is wrong)"
        )


def _tenx_mtx(path: str, scratch: Path | None) -> _Source:
    import pandas as pd
    import scipy.io

    folder = Path(path)
    matrix = _find(folder, "matrix.mtx")
    barcodes = _find(folder, "barcodes.tsv")
    features = _find(folder, "features.tsv")
    genes = features or _find(folder, "genes.tsv")
    if matrix is None or barcodes is None or genes is None:
        raise InvalidArgumentError(
            f"{path} is not a 10x MTX folder (needs matrix.mtx, barcodes.tsv and "
            "features.tsv or genes.tsv, optionally gzipped)"
        )
    source = _Source(path)
    (kind, form, field, symmetry), (n_genes, n_cells, nnz), skip = _mtx_header(matrix)
    if (kind, form, symmetry) == ("matrix", "coordinate", "general") and field in (
        "integer",
        "real",
        "pattern",
    ):
        # What 10x writes: read in blocks of lines, regrouped by cells through a scratch file.
        source.x = _Banded(
            (n_cells, n_genes),
            nnz,
            lambda: _mtx_blocks(matrix, field, skip, (n_genes, n_cells), nnz),
            scratch,
        )
    else:
        with _open_text(matrix) as handle:
            # Other MatrixMarket variants (symmetric, dense arrays): read whole.
            source.x = _InMemory(sp.csr_matrix(scipy.io.mmread(handle).T))
    table = pd.read_csv(genes, sep="\t", header=None, dtype=str, keep_default_na=False)
    extra = {"feature_types": list(table[2])} if features is not None and table.shape[1] > 2 else {}
    names = table[1] if table.shape[1] > 1 else table[0]
    source.var = _var_frame(list(table[0]), list(names), extra)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str, keep_default_na=False)
    source.obs = pd.DataFrame(index=pd.Index(list(cells[0])))
    if source.x.shape != (len(source.obs), len(source.var)):
        raise InvalidArgumentError(
            f"{path}: matrix is {source.x.shape[1]} genes × {source.x.shape[0]} cells but "
            f"there are {len(source.var)} genes and {len(source.obs)} barcodes"
        )
    return source


def detect_format(path: PathLike) -> str:
    """The input format of ``path``: ``h5ad``, ``10x_mtx`` (a folder) or ``10x_h5``.

    Parameters
    ----------
    path
        An input file or folder.

    Returns
    -------
    str
        One of :data:`FORMATS`.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"input {os.fspath(path)} does not exist")
    if p.is_dir():
        return "10x_mtx"
    if p.suffix == ".h5ad":
        return "h5ad"
    if p.suffix in (".h5", ".hdf5"):
        return "10x_h5"
    raise InvalidArgumentError(
        f"cannot tell the format of {os.fspath(path)}; pass --format ({', '.join(FORMATS)})"
    )


def _open(path: PathLike, input_format: str | None, scratch: Path | None) -> _Source:
    fmt = input_format or detect_format(path)
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"unknown format {fmt!r} (expected {', '.join(FORMATS)})")
    if not Path(path).exists():
        raise DatasetNotFoundError(f"input {os.fspath(path)} does not exist")
    try:
        if fmt == "10x_h5":
            return _tenx_h5(os.fspath(path))
        return {"h5ad": _h5ad, "10x_mtx": _tenx_mtx}[fmt](os.fspath(path), scratch)
    except (OSError, KeyError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise InvalidArgumentError(f"cannot read {os.fspath(path)} as {fmt}: {e}") from e


# ---------------------------------------------------------------------------------------------
# Writing


class _Progress:
    """Cells written, with the source being written as the bar's label."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = progress_bar(total, " cells", enabled)
        self.label = ""

    def update(self, n: int, label: str) -> None:
        if label != self.label:
            self.label = label
            self.bar.set_description_str(label, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _coo_parts(m: Any) -> tuple[Any, Any, Any]:
    coo = sp.coo_matrix(m)
    return _arrow(coo.row), _arrow(coo.col), _arrow(coo.data)


class _NotUint16(Exception):
    """X holds a value that is not an integer in 0..65535 (so it cannot be stored as uint16)."""


_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _ValueCheck:
    """Refuses X values that float32 storage would not keep: NaN, ±inf and finite values
    beyond float32's range (which would become ±inf). With ``allow`` they are stored (NaN as
    NaN, the others as ±inf) and counted for one warning at the end."""

    def __init__(self, allow: bool) -> None:
        self.allow = allow
        self.counts = {"NaN": 0, "infinite": 0, "beyond float32's range": 0}

    def check(self, data: np.ndarray, where: str) -> None:
        if data.dtype.kind != "f" or not len(data):
            return
        # min/max propagate NaN: one cheap pass decides whether anything needs a closer look.
        lo, hi = data.min(), data.max()
        if -_FLOAT32_MAX <= lo and hi <= _FLOAT32_MAX:
            return
        nan = int(np.isnan(data).sum())
        inf = int(np.isinf(data).sum())
        big = int((np.abs(data[np.isfinite(data)]) > _FLOAT32_MAX).sum())
        found = {"NaN": nan, "infinite": inf, "beyond float32's range": big}
        if not self.allow:
            what = ", ".join(f"{n:,} {k}" for k, n in found.items() if n)
            raise InvalidArgumentError(
                f"{where}: X holds values that cannot be stored as numbers ({what}); pass "
                "allow_nonfinite=True (--allow-nonfinite) to store them anyway (NaN as NaN, "
                "the others as ±inf)"
            )
        for k, n in found.items():
            self.counts[k] += n

    def warn(self) -> None:
        what = ", ".join(f"{n:,} {k}" for k, n in self.counts.items() if n)
        if what:
            warnings.warn(
                f"X holds {what} values; stored as NaN / ±inf as allowed "
                "(statistics in config.json leave them out)",
                stacklevel=3,
            )


def _write_cells(
    writer: Any,
    source: _Source,
    obs: Any,
    chunk_size: int,
    progress: _Progress,
    uint16: bool,
    values: _ValueCheck,
) -> None:
    writer.begin_source(source.path, source.n_cells)
    label = f"converting {Path(source.path).name}"
    for start in range(0, source.n_cells, chunk_size):
        stop = min(source.n_cells, start + chunk_size)
        rows = source.x.rows(start, stop)
        values.check(rows[2], source.path)
        indptr, indices, data = (_arrow(a) for a in rows)
        # The value type check rides on the read: no separate pass over the values.
        if uint16 and len(data) and not _native.NativeWriter.fits_uint16(data):
            raise _NotUint16
        layers = [
            (name, *(_arrow(a) for a in m.rows(start, stop))) for name, m in source.layers.items()
        ]
        writer.write_cells(indptr, indices, data, obs.slice(start, stop - start), layers)
        progress.update(stop - start, label)
    if source.obsp:
        writer.write_pairwise("obsp", [(k, *_coo_parts(v)) for k, v in source.obsp.items()])


def _unify(tables: list[Any]) -> list[Any]:
    """Tables with the union of their columns (absent ones null), types promoted."""
    import pyarrow as pa

    if len(tables) < 2:
        return tables
    schema = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
    out = []
    for t in tables:
        columns = [
            t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(len(t), f.type)
            for f in schema
        ]
        out.append(pa.table(columns, schema=schema))
    return out


def _paths(inputs: PathLike | Sequence[PathLike]) -> list[PathLike]:
    return [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)


@contextmanager
def _opened(
    inputs: PathLike | Sequence[PathLike],
    input_format: str | None,
    chunk_size: int,
    output: str,
) -> Iterator[list[_Source]]:
    """Checks the arguments ``convert`` and ``append`` share, opens every input and closes
    them afterwards. Scratch files (CSC and MTX inputs) go next to ``output``."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgumentError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    paths = _paths(inputs)
    if not paths:
        raise InvalidArgumentError("no input files given")
    parent = Path(output).absolute().parent
    scratch = parent if parent.is_dir() else None
    sources: list[_Source] = []
    try:
        for p in paths:
            sources.append(_open(p, input_format, scratch))
        yield sources
    finally:
        for s in sources:
            s.close()


def _write(
    writer: Any,
    sources: list[_Source],
    chunk_size: int,
    progress: bool,
    prepare: Callable[[Any], list[Any]],
    allow_nonfinite: bool,
) -> None:
    """Runs ``prepare(writer)`` (checks and dataset-wide tables; returns each source's obs
    table), writes every source's cells and finishes the dataset. Any failure before the
    commit aborts ``writer``, which leaves the target as it was. For a uint16 dataset, a value
    that does not fit raises :class:`_NotUint16`.

    An exception that arrives once the write is committed (Ctrl-C during the last step) is
    raised with ``slaf_written = True`` set on it, so callers can say what happened."""
    for note in writer.notes:
        warnings.warn(note, stacklevel=3)
    bar = _Progress(sum(s.n_cells for s in sources), progress)
    uint16 = writer.value_type == "uint16"
    values = _ValueCheck(allow_nonfinite)
    try:
        try:
            obs_tables = prepare(writer)
            for source, obs in zip(sources, obs_tables, strict=True):
                _write_cells(writer, source, obs, chunk_size, bar, uint16, values)
            # The gene-major build at commit reads and writes every row: a bar of its own,
            # below the cells' bar (which closes once the write is committed).
            report = rows_callback("gene index", progress)
            if report is not None:
                writer.set_index_progress(report)
            writer.finish()
        finally:
            bar.close()
        values.warn()
    except BaseException as e:
        if writer.committed:
            e.slaf_written = True  # type: ignore[attr-defined]
        else:
            writer.abort()
        raise


def convert(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    input_format: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
    progress: bool = False,
    rows_per_fragment: int | None = None,
    allow_nonfinite: bool = False,
    storage_options: dict[str, str] | None = None,
    gene_index: bool = True,
) -> str:
    """Convert h5ad / 10x inputs into one SLAF dataset.

    Parameters
    ----------
    inputs
        One input path or several; several must have the same genes in the same order, and
        their cells are concatenated in the order given.
    output
        The dataset directory to create, or an object-store URI (``s3://bucket/name.slaf``):
        the dataset is then staged in the temporary folder and uploaded, config.json last, so
        that an interrupted conversion leaves nothing that opens as a dataset.
    input_format
        ``"h5ad"``, ``"10x_mtx"`` or ``"10x_h5"``; detected from each path when omitted.
    chunk_size
        Cells read and written per step (bounds memory).
    overwrite
        Replace an existing ``output``; otherwise an existing ``output`` is an error. Only a
        SLAF dataset is replaced: a file, a folder holding anything else, the current
        directory or a folder that holds an input is refused (nothing is deleted).
    progress
        Print a progress line on stderr.
    rows_per_fragment
        Expression rows per Lance fragment (default ~4 million).
    allow_nonfinite
        Store NaN and ±inf values of X (and float64 values beyond float32's range, as ±inf)
        with a warning, instead of refusing the input.
    storage_options
        Object-store options (credentials, endpoint, region) for an ``s3://`` output; the
        standard AWS variables are used otherwise.
    gene_index
        Also write the gene-major companion table and the per-cell/per-gene statistics
        (``slaf index`` builds them later; ``--no-gene-index`` skips them). Gene-centric
        reads use it; it costs about as much disk as the expression table.

    Returns
    -------
    str
        ``output``.

    Raises
    ------
    slaf.errors.InvalidArgumentError
        The output exists (without ``overwrite``), inputs disagree on genes, or an input
        cannot be read.
    slaf.errors.DatasetNotFoundError
        An input does not exist.
    """
    out = os.fspath(output)
    # An object-store output is checked by the writer itself.
    if "://" not in out and os.path.lexists(out):
        if not overwrite:
            raise InvalidArgumentError(
                f"{out} already exists; pass overwrite=True (--overwrite) to replace it"
            )
        _native.NativeWriter.check_replaceable(out, [os.fspath(p) for p in _paths(inputs)])
    with _opened(inputs, input_format, chunk_size, out) as sources:
        first = sources[0]
        for other in sources[1:]:
            _check_same_genes(first, other)

        def prepare(writer: Any) -> list[Any]:
            writer.write_genes(first.var_table())
            if first.varp:
                writer.write_pairwise("varp", [(k, *_coo_parts(v)) for k, v in first.varp.items()])
            uns = next((s.uns for s in sources if s.uns), None)
            if uns:
                writer.set_uns(json.dumps(uns, allow_nan=False, indent=2))
            return _unify([s.obs_table() for s in sources])

        # Values are stored as uint16 when every one is an integer in 0..65535. That is checked
        # chunk by chunk as X is written; at the first value that is not, the uint16 attempt
        # is dropped and everything is written again as float32.
        for value_type in ("uint16", "float32"):
            writer = _native.NativeWriter.create(
                out,
                sum(s.n_cells for s in sources),
                first.x.shape[1],
                value_type,
                list(dict.fromkeys(name for s in sources for name in s.layers)),
                overwrite,
                rows_per_fragment,
                storage_options,
            )
            writer.set_gene_index(gene_index)
            try:
                _write(writer, sources, chunk_size, progress, prepare, allow_nonfinite)
                break
            except _NotUint16:
                continue
    return out


def _check_same_genes(first: _Source, other: _Source) -> None:
    a, b = first.gene_ids, other.gene_ids
    if a == b:
        return
    if len(a) != len(b):
        raise InvalidArgumentError(
            f"{other.path} has {len(b)} genes but {first.path} has {len(a)}; all inputs need "
            "the same genes in the same order"
        )
    i = next(i for i in range(len(a)) if a[i] != b[i])
    raise InvalidArgumentError(
        f"gene order of {other.path} differs from {first.path}: gene {i} is {b[i]!r} there but "
        f"{a[i]!r} in {first.path}; all inputs need the same genes in the same order"
    )


def append(
    inputs: PathLike | Sequence[PathLike],
    existing: PathLike,
    *,
    input_format: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    allow_nonfinite: bool = False,
    gene_index: bool = True,
) -> str:
    """Append the cells of h5ad / 10x inputs to an existing SLAF dataset.

    The new cells get the next integer ids; the tables gain new Lance versions, committed in
    place, and config.json (which records the versions it describes) is replaced last, in one
    atomic step: readers see the dataset before or after the append, never in between. Appends
    to one dataset wait for each other, so concurrent appends all land, one after the other.
    A symlink to a dataset is followed.

    Parameters
    ----------
    inputs
        Input path(s) with the dataset's genes in the dataset's order.
    existing
        The dataset to extend.
    input_format, chunk_size, progress, allow_nonfinite
        As for :func:`convert`.
    gene_index
        Rebuild the gene-major companion and statistics over all cells (the default);
        ``False`` leaves an existing companion stale (unused until ``slaf index``).

    Returns
    -------
    str
        ``existing``.
    """
    target = os.fspath(existing)
    if "://" in target and not target.startswith("file://"):
        raise InvalidArgumentError(
            f"cannot append to {target}: appending to a dataset on object storage is not "
            "supported yet (the writer appends to local directories only)"
        )
    if not os.path.isdir(target):
        raise DatasetNotFoundError(f"no dataset at {target}: the path does not exist")
    with _opened(inputs, input_format, chunk_size, target) as sources:
        writer = _native.NativeWriter.append(target)
        writer.set_gene_index(gene_index)

        def prepare(writer: Any) -> list[Any]:
            for s in sources:
                writer.check_genes(s.gene_ids, s.path)
                unknown = sorted(set(s.layers) - set(writer.layer_names))
                if unknown:
                    raise InvalidArgumentError(
                        f"{s.path} has layers {unknown} that {target} does not have"
                    )
            return [s.obs_table() for s in sources]

        try:
            _write(writer, sources, chunk_size, progress, prepare, allow_nonfinite)
        except _NotUint16:
            raise InvalidArgumentError(
                f"{target} stores integer (uint16) values but the new inputs hold other "
                "values; convert everything together instead"
            ) from None
    return target


__all__ = ["DEFAULT_CHUNK_SIZE", "FORMATS", "append", "convert", "detect_format"]
