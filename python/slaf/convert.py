"""Conversion of h5ad files and 10x outputs into SLAF datasets.

Inputs are read in bounded memory: X and layers one block of cells at a time (CSR row slices
through ``indptr``, dense row blocks), obs/var/obsm/varm/obsp/varp/uns whole (they are small).
The Rust core does the writing: COO rows, ``cell_start_index``, statistics, config.json, and
the temporary-directory-then-rename that keeps a failed conversion from leaving a dataset.

What is stored where:

* X → ``expression.lance``; values are uint16 when every value of every input is an integer in
  0..65535, else float32.
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
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from slaf import _native
from slaf.errors import DatasetNotFoundError, InvalidArgumentError

#: Input formats ``convert`` understands.
FORMATS = ("h5ad", "10x_mtx", "10x_h5")
#: Cells per chunk read from the input.
DEFAULT_CHUNK_SIZE = 2000
#: Values per block when scanning inputs for the value type.
_SCAN_BLOCK = 1 << 24

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------------------------
# Matrices read by rows


class _Matrix:
    """A cells × genes matrix read one block of rows at a time."""

    shape: tuple[int, int]

    def rows(self, start: int, stop: int) -> sp.csr_matrix:
        raise NotImplementedError

    def value_blocks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError


class _InMemory(_Matrix):
    def __init__(self, matrix: Any) -> None:
        self.m = sp.csr_matrix(matrix)
        self.shape = self.m.shape

    def rows(self, start: int, stop: int) -> sp.csr_matrix:
        return self.m[start:stop]

    def value_blocks(self) -> Iterator[np.ndarray]:
        yield self.m.data


class _CsrRows(_Matrix):
    """CSR arrays in HDF5 (h5ad CSR X, 10x HDF5 matrices): rows are ``indptr`` slices."""

    def __init__(self, data: Any, indices: Any, indptr: Any, shape: tuple[int, int]) -> None:
        self.data, self.indices = data, indices
        self.indptr = np.asarray(indptr[:], dtype=np.int64)
        self.shape = (int(shape[0]), int(shape[1]))

    def rows(self, start: int, stop: int) -> sp.csr_matrix:
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return sp.csr_matrix(
            (self.data[lo:hi], self.indices[lo:hi], self.indptr[start : stop + 1] - lo),
            shape=(stop - start, self.shape[1]),
        )

    def value_blocks(self) -> Iterator[np.ndarray]:
        n = int(self.indptr[-1])
        for lo in range(0, n, _SCAN_BLOCK):
            yield self.data[lo : min(n, lo + _SCAN_BLOCK)]


class _DenseRows(_Matrix):
    def __init__(self, dataset: Any) -> None:
        self.d = dataset
        self.shape = (int(dataset.shape[0]), int(dataset.shape[1]))

    def rows(self, start: int, stop: int) -> sp.csr_matrix:
        return sp.csr_matrix(self.d[start:stop])

    def value_blocks(self) -> Iterator[np.ndarray]:
        step = max(1, _SCAN_BLOCK // max(1, self.shape[1]))
        for lo in range(0, self.shape[0], step):
            yield np.asarray(self.d[lo : lo + step]).ravel()


class _HStack(_Matrix):
    """Matrices over the same cells side by side (10x v2 files with several genomes)."""

    def __init__(self, parts: list[_Matrix]) -> None:
        self.parts = parts
        self.shape = (parts[0].shape[0], sum(p.shape[1] for p in parts))

    def rows(self, start: int, stop: int) -> sp.csr_matrix:
        return sp.hstack([p.rows(start, stop) for p in self.parts], format="csr")

    def value_blocks(self) -> Iterator[np.ndarray]:
        for p in self.parts:
            yield from p.value_blocks()


def _h5ad_matrix(node: Any) -> _Matrix:
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
        from anndata.io import read_elem

        # Row blocks of a CSC matrix touch every column: it is converted whole (O(nnz) memory).
        return _InMemory(sp.csr_matrix(read_elem(node)))
    raise InvalidArgumentError(f"unsupported matrix encoding {encoding!r} in {node.name}")


def _value_type(matrices: Sequence[_Matrix]) -> str:
    """``"uint16"`` when every value is an integer in 0..65535, else ``"float32"``."""
    for matrix in matrices:
        for block in matrix.value_blocks():
            block = np.asarray(block)
            if block.size == 0:
                continue
            if block.dtype.kind not in "iub":
                if block.dtype.kind != "f" or not np.array_equal(block, np.trunc(block)):
                    return "float32"
            if block.min() < 0 or block.max() > 65535:
                return "float32"
    return "uint16"


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
        for f in self._files:
            f.close()


def _h5ad(path: str) -> _Source:
    import h5py
    from anndata.io import read_elem

    source = _Source(path)
    f = h5py.File(path, "r")
    source._files.append(f)
    source.x = _h5ad_matrix(f["X"])
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
                target[key] = _h5ad_matrix(f[group][key])
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
            source.layers[name] = _h5ad_matrix(f["raw"]["X"])
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


def _tenx_mtx(path: str) -> _Source:
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
    with _open_text(matrix) as handle:
        # MTX has no row index: the matrix is read whole (O(nnz) memory).
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


def _open(path: PathLike, input_format: str | None) -> _Source:
    fmt = input_format or detect_format(path)
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"unknown format {fmt!r} (expected {', '.join(FORMATS)})")
    if not Path(path).exists():
        raise DatasetNotFoundError(f"input {os.fspath(path)} does not exist")
    try:
        return {"h5ad": _h5ad, "10x_mtx": _tenx_mtx, "10x_h5": _tenx_h5}[fmt](os.fspath(path))
    except (OSError, KeyError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise InvalidArgumentError(f"cannot read {os.fspath(path)} as {fmt}: {e}") from e


# ---------------------------------------------------------------------------------------------
# Writing


class _Progress:
    """A one-line progress report on stderr."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done = total, enabled, 0
        self.start = time.monotonic()

    def update(self, n: int, label: str) -> None:
        self.done += n
        if self.enabled:
            pct = 100.0 * self.done / max(1, self.total)
            rate = self.done / max(1e-9, time.monotonic() - self.start)
            sys.stderr.write(
                f"\r{label}: {self.done:,}/{self.total:,} cells ({pct:5.1f}%, {rate:,.0f} cells/s)"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _csr_parts(m: sp.csr_matrix, value_type: str) -> tuple[bytes, bytes, bytes, str]:
    m.sum_duplicates() if not m.has_canonical_format else None
    return (
        np.asarray(m.indptr, dtype=np.int64).tobytes(),
        np.asarray(m.indices, dtype=np.uint32).tobytes(),
        np.asarray(m.data, dtype=value_type).tobytes(),
        value_type,
    )


def _coo_parts(m: Any) -> tuple[bytes, bytes, bytes]:
    coo = sp.coo_matrix(m)
    return (
        coo.row.astype(np.int64).tobytes(),
        coo.col.astype(np.int64).tobytes(),
        coo.data.astype(np.float32).tobytes(),
    )


def _write_cells(
    writer: Any,
    source: _Source,
    obs: Any,
    value_type: str,
    chunk_size: int,
    progress: _Progress,
) -> None:
    writer.begin_source(source.path, source.n_cells)
    label = f"converting {Path(source.path).name}"
    for start in range(0, source.n_cells, chunk_size):
        stop = min(source.n_cells, start + chunk_size)
        x = _csr_parts(source.x.rows(start, stop), value_type)
        layers = [
            (name, *_csr_parts(m.rows(start, stop), "float32")) for name, m in source.layers.items()
        ]
        writer.write_cells(*x, obs.slice(start, stop - start), layers)
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


def _inputs(inputs: PathLike | Sequence[PathLike]) -> list[PathLike]:
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if not items:
        raise InvalidArgumentError("no input files given")
    return items


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgumentError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def convert(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    input_format: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
    progress: bool = False,
    rows_per_fragment: int | None = None,
) -> str:
    """Convert h5ad / 10x inputs into one SLAF dataset.

    Parameters
    ----------
    inputs
        One input path or several; several must have the same genes in the same order, and
        their cells are concatenated in the order given.
    output
        The dataset directory to create.
    input_format
        ``"h5ad"``, ``"10x_mtx"`` or ``"10x_h5"``; detected from each path when omitted.
    chunk_size
        Cells read and written per step (bounds memory).
    overwrite
        Replace an existing ``output``; otherwise an existing ``output`` is an error.
    progress
        Print a progress line on stderr.
    rows_per_fragment
        Expression rows per Lance fragment (default ~4 million).

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
    _check_chunk_size(chunk_size)
    paths = _inputs(inputs)
    out = os.fspath(output)
    if os.path.exists(out) and not overwrite:
        raise InvalidArgumentError(
            f"{out} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    sources: list[_Source] = []
    try:
        for p in paths:
            sources.append(_open(p, input_format))
        first = sources[0]
        for other in sources[1:]:
            _check_same_genes(first, other)
        value_type = _value_type([s.x for s in sources])
        layer_names = list(dict.fromkeys(name for s in sources for name in s.layers))
        obs_tables = _unify([s.obs_table() for s in sources])
        writer = _native.NativeWriter.create(
            out,
            sum(s.n_cells for s in sources),
            first.x.shape[1],
            value_type,
            layer_names,
            overwrite,
            rows_per_fragment,
        )
        try:
            writer.write_genes(first.var_table())
            if first.varp:
                writer.write_pairwise("varp", [(k, *_coo_parts(v)) for k, v in first.varp.items()])
            bar = _Progress(sum(s.n_cells for s in sources), progress)
            for source, obs in zip(sources, obs_tables, strict=True):
                _write_cells(writer, source, obs, value_type, chunk_size, bar)
            bar.close()
            uns = next((s.uns for s in sources if s.uns), None)
            if uns:
                writer.set_uns(json.dumps(uns, allow_nan=False, indent=2))
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    finally:
        for s in sources:
            s.close()
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
) -> str:
    """Append the cells of h5ad / 10x inputs to an existing SLAF dataset.

    The new cells get the next integer ids; every table gains a new Lance version. The
    dataset is updated in a hard-linked copy that replaces it only when complete.

    Parameters
    ----------
    inputs
        Input path(s) with the dataset's genes in the dataset's order.
    existing
        The dataset to extend.
    input_format, chunk_size, progress
        As for :func:`convert`.

    Returns
    -------
    str
        ``existing``.
    """
    _check_chunk_size(chunk_size)
    paths = _inputs(inputs)
    target = os.fspath(existing)
    if not os.path.isdir(target):
        raise DatasetNotFoundError(f"no dataset at {target}: the path does not exist")
    sources: list[_Source] = []
    try:
        for p in paths:
            sources.append(_open(p, input_format))
        writer = _native.NativeWriter.append(target)
        try:
            for s in sources:
                writer.check_genes(s.gene_ids, s.path)
                unknown = sorted(set(s.layers) - set(writer.layer_names))
                if unknown:
                    raise InvalidArgumentError(
                        f"{s.path} has layers {unknown} that {target} does not have"
                    )
            value_type = writer.value_type
            if value_type == "uint16" and _value_type([s.x for s in sources]) != "uint16":
                raise InvalidArgumentError(
                    f"{target} stores integer (uint16) values but the new inputs hold other "
                    "values; convert everything together instead"
                )
            bar = _Progress(sum(s.n_cells for s in sources), progress)
            for s in sources:
                _write_cells(writer, s, s.obs_table(), value_type, chunk_size, bar)
            bar.close()
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    finally:
        for s in sources:
            s.close()
    return target


__all__ = ["DEFAULT_CHUNK_SIZE", "FORMATS", "append", "convert", "detect_format"]
