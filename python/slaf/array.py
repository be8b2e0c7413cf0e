"""``SLAFArray``: a SLAF dataset opened in place, read through the Rust core."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from slaf import _native
from slaf._compat import ignore_tuning
from slaf._selectors import to_native
from slaf.errors import InvalidArgumentError
from slaf.filters import filter_metadata

if TYPE_CHECKING:
    from slaf.sql import Plan, QueryEngine

T = TypeVar("T")


def _csr(parts: tuple) -> sp.csr_matrix:
    shape, indptr, indices, data, dtype = parts
    return sp.csr_matrix(
        (
            np.frombuffer(data, dtype=dtype),
            np.frombuffer(indices, dtype=np.int32),
            np.frombuffer(indptr, dtype=np.int64),
        ),
        shape=shape,
    )


class _LazyMapping(Mapping[str, T], Generic[T]):
    """A read-only mapping whose values are loaded on first access and then kept."""

    def __init__(self, keys: list[str], load: Any, what: str) -> None:
        self._keys = list(keys)
        self._load = load
        self._what = what
        self._cache: dict[str, T] = {}

    def __getitem__(self, key: str) -> T:
        if key not in self._keys:
            raise KeyError(f"no {self._what} key {key!r} (available: {self._keys or 'none'})")
        if key not in self._cache:
            self._cache[key] = self._load(key)
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"{self._what} with keys: {', '.join(self._keys) or '(none)'}"


class SLAFArray:
    """A SLAF dataset, opened where it lives (local directory or object store).

    Nothing but ``config.json`` and the table footers is read on open; obs/var, matrices and
    embeddings are read when asked for, and only the selected cells' rows are read for a
    submatrix.

    Parameters
    ----------
    slaf_path
        Dataset directory or URI (``s3://bucket/data.slaf``).
    storage_options
        Object-store options passed to Lance (``aws_endpoint``, ``aws_region``, keys, ...).
    cell_cache_bytes
        Size of the in-process cache of decoded cells that random-access reads
        (``get_submatrix``, the lazy AnnData view) keep, so that repeated and overlapping
        selections come from memory; default 256 MiB, ``0`` turns it off. Scans (SQL, Polars,
        the loader) do not use it. Also settable later as an attribute.

    Examples
    --------
    >>> from slaf import SLAFArray
    >>> data = SLAFArray("pbmc.slaf")                                   # doctest: +SKIP
    >>> data.shape                                                       # doctest: +SKIP
    (1107, 507)
    >>> X = data.get_submatrix(slice(0, 100), ["CD3E", "MS4A1"])        # doctest: +SKIP
    """

    def __init__(
        self,
        slaf_path: str | os.PathLike[str],
        storage_options: dict[str, str] | None = None,
        load_metadata: bool | None = None,
        cache_dir: str | None = None,
        *,
        cell_cache_bytes: int | None = None,
    ) -> None:
        # slafdb loads obs/var in a background thread (load_metadata) and caches hub
        # downloads (cache_dir); here obs/var are read on first access and paths are opened
        # in place, so both only tune what does not exist.
        ignore_tuning("SLAFArray", load_metadata=load_metadata, cache_dir=cache_dir)
        self.slaf_path = os.fspath(slaf_path)
        self._storage_options = storage_options
        self._native = _native.NativeDataset(self.slaf_path, storage_options)
        if cell_cache_bytes is not None:
            self.cell_cache_bytes = cell_cache_bytes

    def _reload(self) -> None:
        """Reopen the dataset after a change was committed to it, dropping what was read."""
        cache_bytes = self.cell_cache_bytes
        self._native = _native.NativeDataset(self.slaf_path, self._storage_options)
        self.cell_cache_bytes = cache_bytes
        for name, member in vars(type(self)).items():
            if isinstance(member, cached_property):
                self.__dict__.pop(name, None)

    @property
    def cell_cache_bytes(self) -> int:
        """Size of the cache of decoded cells kept by random-access reads, in bytes (0: off).

        Examples
        --------
        >>> data = SLAFArray("pbmc.slaf", cell_cache_bytes=64 << 20)       # doctest: +SKIP
        >>> data.cell_cache_bytes = 0  # off: every read goes to storage    # doctest: +SKIP
        """
        return self._native.cell_cache_bytes

    @cell_cache_bytes.setter
    def cell_cache_bytes(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise TypeError(f"cell_cache_bytes must be an int, not {type(size).__name__}")
        if size < 0:
            raise ValueError(f"cell_cache_bytes must be 0 (off) or positive, not {size}")
        self._native.set_cell_cache_bytes(int(size))

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_cells, n_genes)``."""
        return self._native.shape

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return self.shape[0]

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return self.shape[1]

    @property
    def nnz(self) -> int:
        """Number of stored expression values."""
        return self._native.nnz

    @cached_property
    def config(self) -> dict[str, Any]:
        """The dataset's ``config.json``."""
        return json.loads(self._native.config_json())

    @cached_property
    def obs(self) -> pl.DataFrame:
        """Cell annotations: ``cell_id``, ``cell_integer_id``, then the obs columns.

        Row ``i`` is cell ``i``.
        """
        return pl.DataFrame(self._native.obs())

    @cached_property
    def var(self) -> pl.DataFrame:
        """Gene annotations: ``gene_id``, ``gene_integer_id``, then the var columns.

        Row ``i`` is gene ``i``.
        """
        return pl.DataFrame(self._native.var())

    @cached_property
    def obsm(self) -> Mapping[str, np.ndarray]:
        """Cell embeddings (``X_pca``, ``X_umap``, ...) as ``n_cells × d`` arrays."""
        keys = [k for k, _ in self._native.obsm_keys()]
        return _LazyMapping(keys, self._dense(self._native.obsm), "obsm")

    @cached_property
    def varm(self) -> Mapping[str, np.ndarray]:
        """Gene embeddings (``PCs``, ...) as ``n_genes × d`` arrays."""
        keys = [k for k, _ in self._native.varm_keys()]
        return _LazyMapping(keys, self._dense(self._native.varm), "varm")

    @cached_property
    def obsp(self) -> Mapping[str, sp.csr_matrix]:
        """Pairwise cell matrices (``connectivities``, ``distances``, ...) as CSR."""
        return _LazyMapping(self._native.obsp_keys(), lambda k: _csr(self._native.obsp(k)), "obsp")

    @cached_property
    def varp(self) -> Mapping[str, sp.csr_matrix]:
        """Pairwise gene matrices as CSR."""
        return _LazyMapping(self._native.varp_keys(), lambda k: _csr(self._native.varp(k)), "varp")

    @cached_property
    def uns(self) -> dict[str, Any]:
        """Unstructured metadata from ``uns.json`` (empty when the dataset has none)."""
        text = self._native.uns_json()
        return {} if text is None else json.loads(text)

    @property
    def layer_names(self) -> list[str]:
        """Names of the layers listed in ``config.json``."""
        return self._native.layer_names()

    @staticmethod
    def _dense(load: Any) -> Any:
        def read(key: str) -> np.ndarray:
            shape, data, dtype = load(key)
            return np.frombuffer(data, dtype=dtype).reshape(shape)

        return read

    def get_submatrix(
        self,
        cell_selector: Any = None,
        gene_selector: Any = None,
        table_name: str = "expression",
        layer_name: str | None = None,
        *,
        layer: str | None = None,
        format: Literal["polars", "csr"] = "polars",
    ) -> pl.DataFrame | sp.csr_matrix:
        """Read ``X[cell_selector, gene_selector]`` (or a layer's).

        Parameters
        ----------
        cell_selector, gene_selector
            ``None`` / ``slice(None)`` for all; an int, slice, boolean mask, integer ids, a name
            or a list of names. Rows and columns come out in the order selected.
        table_name, layer_name
            slafdb's way to name a layer: ``table_name="layers", layer_name="spliced"``.
        layer
            Read this layer (see ``layer_names``) instead of X.
        format
            ``"polars"`` (slafdb's result, the default): a long frame of the stored values with
            columns ``cell_id``, ``gene_id``, ``value``, cells in selection order and genes
            ascending within a cell. ``"csr"``: a ``len(cells) × len(genes)`` matrix.

        Returns
        -------
        polars.DataFrame or scipy.sparse.csr_matrix
            Values are float32 (float64 when stored as 64-bit); CSR indices are sorted.

        Examples
        --------
        >>> data = SLAFArray("pbmc.slaf")                                   # doctest: +SKIP
        >>> data.get_submatrix(slice(0, 100), ["CD3E", "MS4A1"], format="csr")  # doctest: +SKIP
        <100x2 sparse matrix of type '<class 'numpy.float32'>' ...>
        >>> data.get_submatrix([0, 1]).columns                              # doctest: +SKIP
        ['cell_id', 'gene_id', 'value']
        """
        if table_name not in ("expression", "layers"):
            raise InvalidArgumentError(
                f'table_name must be "expression" or "layers", not {table_name!r}'
            )
        if table_name == "layers":
            if layer_name is None and layer is None:
                raise InvalidArgumentError('table_name="layers" needs layer_name=')
            layer = layer if layer is not None else layer_name
        if format not in ("polars", "csr"):
            raise InvalidArgumentError(f'format must be "polars" or "csr", not {format!r}')
        cells = to_native(cell_selector, "cell")
        genes = to_native(gene_selector, "gene")
        if layer is not None:
            matrix = _csr(self._native.layer_submatrix(layer, cells, genes))
        else:
            matrix = _csr(self._native.submatrix(cells, genes))
        if format == "csr":
            return matrix
        cell_ids = np.frombuffer(self._native.resolve_cells(cells), dtype=np.uint32)
        gene_ids = np.frombuffer(self._native.resolve_genes(genes), dtype=np.uint32)
        return self._long_frame(matrix, cell_ids, gene_ids, integer_ids=False)

    def _long_frame(
        self,
        matrix: sp.csr_matrix,
        cell_ids: np.ndarray,
        gene_ids: np.ndarray,
        integer_ids: bool = True,
    ) -> pl.DataFrame:
        """The stored values of ``matrix`` as long rows; ``integer_ids=False`` leaves out the
        integer id columns (get_submatrix's frame has names only)."""
        counts = np.diff(matrix.indptr)
        rows = np.repeat(cell_ids, counts)
        cols = gene_ids[matrix.indices]
        integers = {}
        if integer_ids:
            integers = {
                "cell_integer_id": rows.astype(np.int64),
                "gene_integer_id": cols.astype(np.int64),
            }
        return pl.DataFrame(
            {
                **integers,
                "cell_id": self.obs["cell_id"].gather(rows),
                "gene_id": self.var["gene_id"].gather(cols),
                "value": matrix.data,
            }
        )

    def get_cell_expression(self, cell_ids: Any) -> pl.DataFrame:
        """Stored values of the given cells as long rows.

        Parameters
        ----------
        cell_ids
            A cell name, integer id, or a list / array / slice / mask of them.

        Returns
        -------
        polars.DataFrame
            ``cell_integer_id, gene_integer_id, cell_id, gene_id, value`` in selection order,
            genes ascending within a cell.
        """
        cells = to_native(cell_ids, "cell")
        ids = np.frombuffer(self._native.resolve_cells(cells), dtype=np.uint32)
        matrix = _csr(self._native.submatrix(cells, ("all", None)))
        return self._long_frame(matrix, ids, np.arange(self.n_genes, dtype=np.uint32))

    def get_gene_expression(self, gene_ids: Any) -> pl.DataFrame:
        """Stored values of the given genes across all cells, as long rows.

        With the dataset's gene-major table (written by ``slaf convert``, or added by
        ``slaf index PATH``) only these genes' rows are read; without it (or once an append
        has made it stale) every cell's rows are, since cells are stored contiguously.
        The rows are the same either way.

        Parameters
        ----------
        gene_ids
            Gene names, integer ids, a slice or a boolean mask.

        Returns
        -------
        polars.DataFrame
            ``cell_integer_id, gene_integer_id, cell_id, gene_id, value``, cells ascending,
            genes in selection order within a cell.

        Examples
        --------
        >>> data = SLAFArray("data/pbmc.slaf")                  # doctest: +SKIP
        >>> data.get_gene_expression(["CD3E", "MS4A1"]).columns  # doctest: +SKIP
        ['cell_integer_id', 'gene_integer_id', 'cell_id', 'gene_id', 'value']
        """
        genes = to_native(gene_ids, "gene")
        ids = np.frombuffer(self._native.resolve_genes(genes), dtype=np.uint32)
        matrix = _csr(self._native.submatrix(("all", None), genes))
        return self._long_frame(matrix, np.arange(self.n_cells, dtype=np.uint32), ids)

    @cached_property
    def _sql(self) -> QueryEngine:
        from slaf.sql import QueryEngine  # DuckDB is imported on first query

        tables = list(self.config.get("tables", {}))
        return QueryEngine(self.slaf_path, tables, self.shape, self._storage_options)

    def query(self, sql: str) -> pl.DataFrame:
        """Run a SQL query over the tables ``cells``, ``genes``, ``expression`` (and
        ``layers`` when the dataset has one).

        The query runs in DuckDB with the SLAF extension, so it means what it means in the
        DuckDB shell; as in slafdb, a double-quoted name that is not a column is a string
        literal (``WHERE batch = "batch1"``). Restrictions of ``expression`` by cell or gene
        ids (``=``, ``IN``, ranges, ``BETWEEN``) or by joins to ``cells`` / ``genes`` with
        predicates on their columns read only the rows selected (see ``explain_query``).

        Parameters
        ----------
        sql
            One SELECT statement (or DESCRIBE / SHOW).

        Returns
        -------
        polars.DataFrame
            The result.

        Raises
        ------
        slaf.errors.QueryError
            (a ValueError) for a syntax error, an unknown table or column, or any other
            error DuckDB reports; the message names the problem.

        Examples
        --------
        >>> data = SLAFArray("pbmc.slaf")                                   # doctest: +SKIP
        >>> data.query('''
        ...     SELECT cell_type, AVG(total_counts) AS avg_counts FROM cells
        ...     WHERE batch = "batch1" GROUP BY cell_type ORDER BY avg_counts DESC
        ... ''')                                                             # doctest: +SKIP
        >>> data.query("SELECT gene_integer_id, value FROM expression WHERE cell_integer_id = 5")
        ... # doctest: +SKIP
        """
        return self._sql.query(sql)

    def explain_query(self, sql: str) -> Plan:
        """How ``query(sql)`` runs: the SQL DuckDB executes after the dialect and pushdown
        rewrites (``slaf_slice(...)`` / ``slaf_scan(..., filter := ...)`` where rows are
        selected), whether anything was pushed down, and which double-quoted names were read
        as strings. The query is bound (errors are raised) but not executed.

        Parameters
        ----------
        sql
            As for :meth:`query`.

        Returns
        -------
        slaf.sql.Plan
            ``.sql``, ``.pushed``, ``.literals``; ``str(plan)`` is the SQL.

        Examples
        --------
        >>> print(data.explain_query("SELECT * FROM expression WHERE cell_integer_id IN (1, 2)"))
        ... # doctest: +SKIP
        SELECT * FROM (SELECT ... FROM slaf_slice('/data/pbmc.slaf', cells := [1, 2]::BIGINT[])) ...
        """
        return self._sql.plan(sql)

    def filter_cells(self, **filters: Any) -> pl.DataFrame:
        """The obs rows whose columns satisfy every condition (slafdb's ``filter_cells``).

        Parameters
        ----------
        **filters
            ``column=value``: ``"T cell"`` (equality), ``["T cell", "B cell"]`` (membership),
            ``">100"`` / ``">=100"`` / ``"<5"`` / ``"<=5"`` (numeric comparison), or a tuple
            ``(low, high)`` (inclusive range, ``None`` for an open side).

        Returns
        -------
        polars.DataFrame
            Rows of :attr:`obs`, in cell order (all of them without conditions).

        Raises
        ------
        slaf.errors.InvalidArgumentError
            (a ValueError) for an unknown column or a condition that does not apply to it.

        Examples
        --------
        >>> data.filter_cells(cell_type="T cells", total_counts=">1000")  # doctest: +SKIP
        """
        return filter_metadata(self.obs, filters, "cell")

    def filter_genes(self, **filters: Any) -> pl.DataFrame:
        """The var rows whose columns satisfy every condition (slafdb's ``filter_genes``).

        Parameters
        ----------
        **filters
            As for :meth:`filter_cells`.

        Returns
        -------
        polars.DataFrame
            Rows of :attr:`var`, in gene order.

        Examples
        --------
        >>> data.filter_genes(highly_variable=True)                       # doctest: +SKIP
        """
        return filter_metadata(self.var, filters, "gene")

    @cached_property
    def layers(self) -> Mapping[str, sp.csr_matrix]:
        """The layers as whole CSR matrices, each read on first access (see ``layer_names``)."""
        return _LazyMapping(
            self.layer_names, lambda k: self.get_submatrix(layer=k, format="csr"), "layers"
        )

    def is_metadata_ready(self) -> bool:
        """Always ``True``: obs/var are read on first access, never in the background.

        slafdb loads them in a thread; code that polls this keeps working.
        """
        return True

    def is_metadata_loading(self) -> bool:
        """Always ``False`` (see :meth:`is_metadata_ready`)."""
        return False

    def wait_for_metadata(self, timeout: float | None = None) -> None:
        """Return at once: there is no background metadata load to wait for.

        Parameters
        ----------
        timeout
            Accepted for slafdb's signature.
        """

    def nearest_cells(
        self,
        query_vectors: Any,
        k: int = 15,
        key: str | None = None,
        filter: str | None = None,
        columns: list[str] | None = None,
        nprobes: int | None = None,
        refine: int | None = None,
        metric: str | None = None,
        exact: bool = False,
    ) -> pl.DataFrame:
        """The ``k`` cells nearest to each query vector in embedding ``obsm[key]``.

        A key with a vector index (:meth:`build_vector_index`) is searched through it; any
        other key is searched exactly (a parallel flat scan), so results never depend on an
        index being there, only their speed does.

        Parameters
        ----------
        query_vectors
            One vector (1-D) or a batch, shape ``(n_queries, d)``: e.g. cells embedded by the
            same model that produced ``obsm[key]``.
        k
            Neighbours per query.
        key
            The obsm key; may be left out when the dataset has only one.
        filter
            A SQL predicate on obs columns (``"tissue = 'lung'"``): only matching cells are
            candidates.
        columns
            obs columns to add to the result.
        nprobes, refine
            Index knobs: IVF partitions probed per query (more: higher recall, slower), and
            re-ranking of ``refine * k`` candidates by exact distance.
        metric
            ``"l2"`` (squared Euclidean), ``"cosine"`` (1 - cos) or ``"dot"`` (1 - x.y);
            default: the index's metric, or l2. Another metric than the index's is searched
            exactly.
        exact
            Ignore the index.

        Returns
        -------
        polars.DataFrame
            ``query`` (row of ``query_vectors``), ``cell_integer_id``, ``cell_id``,
            ``distance`` and ``columns``; nearest first within each query.

        Raises
        ------
        slaf.errors.UnknownNameError
            (a KeyError) for a key that is not an obsm embedding, or an unknown column.
        slaf.errors.InvalidArgumentError
            (a ValueError) for queries of the wrong dimension, ``k < 1`` or a bad filter.

        Examples
        --------
        >>> hits = data.nearest_cells(vectors, k=15, key="X_scvi",
        ...                           filter="tissue = 'lung'", columns=["cell_type"])
        ...                                                                  # doctest: +SKIP
        """
        from slaf import knn

        options = {
            "filter": filter,
            "nprobes": nprobes,
            "refine": refine,
            "metric": metric,
            "exact": exact,
        }
        return knn.nearest_to_vectors(self, "obsm", query_vectors, k, key, columns, options)

    def nearest_genes(
        self,
        genes: Any,
        k: int = 20,
        key: str | None = None,
        filter: str | None = None,
        columns: list[str] | None = None,
        nprobes: int | None = None,
        refine: int | None = None,
        metric: str | None = None,
        exact: bool = False,
    ) -> pl.DataFrame:
        """The ``k`` genes nearest to each query in gene embedding ``varm[key]``.

        Parameters
        ----------
        genes
            Gene names (a name or a list): each is searched with its own vector and is left
            out of its own results; or query vectors, as in :meth:`nearest_cells`.
        k, key, filter, columns, nprobes, refine, metric, exact
            As for :meth:`nearest_cells`, over varm and var.

        Returns
        -------
        polars.DataFrame
            ``query`` (the gene name, or the vector's row), ``gene_integer_id``, ``gene_id``,
            ``distance`` and ``columns``.

        Examples
        --------
        >>> data.nearest_genes(["CD3E", "MS4A1"], k=20, key="gene_embedding")  # doctest: +SKIP
        """
        from slaf import knn

        options = {
            "filter": filter,
            "nprobes": nprobes,
            "refine": refine,
            "metric": metric,
            "exact": exact,
        }
        # Names: a string, or any list / array / pandas Index of strings.
        if isinstance(genes, str):
            names = [genes]
        else:
            array = np.asarray(genes)
            names = [str(g) for g in array.ravel()] if array.dtype.kind in "US" else []
            if array.dtype.kind == "O" and all(isinstance(g, str) for g in array.ravel()):
                names = list(array.ravel())
        if not names:
            return knn.nearest_to_vectors(self, "varm", genes, k, key, columns, options)
        key, _width = knn.resolve_key(self, key, "varm")
        own = np.frombuffer(self._native.resolve_genes(to_native(list(names), "gene")), np.uint32)
        queries = np.ascontiguousarray(self.varm[key][own], dtype=np.float32)
        # One more neighbour per query: each gene finds itself, and is dropped.
        query, ids, distance = knn.search(self, "varm", key, queries, k + 1, options)
        keep = ids != own[query]
        query, ids, distance = query[keep], ids[keep], distance[keep]
        # Rows come grouped by query: a row's rank is its distance from its group's start.
        keep = np.arange(len(query)) - np.searchsorted(query, query) < k
        named = np.asarray(names, dtype=object)[query[keep]]
        return knn.hits_frame(self, "varm", named, ids[keep], distance[keep], columns)

    def build_vector_index(
        self,
        key: str,
        section: Literal["obsm", "varm"] | None = None,
        index_type: str = "IVF_FLAT",
        metric: str = "l2",
        num_partitions: int | None = None,
        num_sub_vectors: int | None = None,
    ) -> dict[str, Any]:
        """Build (or rebuild) a Lance vector index on embedding ``key``, as a new version.

        Parameters
        ----------
        key
            An obsm key (or a varm key).
        section
            ``"obsm"`` or ``"varm"``, when the key is in both.
        index_type
            ``"IVF_FLAT"`` (vectors kept as they are: exact distances within the probed
            partitions), ``"IVF_SQ"`` (8-bit, a quarter of the size), ``"IVF_PQ"`` (smallest;
            use ``refine`` when querying) or ``"IVF_HNSW_SQ"``.
        metric
            ``"l2"``, ``"cosine"`` or ``"dot"``; queries default to it.
        num_partitions
            IVF partitions; default about the square root of the number of rows.
        num_sub_vectors
            PQ sub-vectors (IVF_PQ); default: sub-vectors of about 4 dimensions.

        Returns
        -------
        dict
            The index: ``section, key, name, index_type, metric, num_partitions,
            indexed_rows, unindexed_rows``.

        Examples
        --------
        >>> data.build_vector_index("X_scvi", metric="cosine")              # doctest: +SKIP
        """
        from slaf import knn

        section = knn.section_of(self, key, section)
        row = _native.build_vector_index(
            self.slaf_path, section, key, index_type, metric, num_partitions, num_sub_vectors
        )
        self._reload()
        return knn.index_record(row)

    def drop_vector_index(self, key: str, section: Literal["obsm", "varm"] | None = None) -> None:
        """Drop the vector index of embedding ``key`` (searches become exact), as a new version.

        Examples
        --------
        >>> data.drop_vector_index("X_scvi")                                  # doctest: +SKIP
        """
        from slaf import knn

        section = knn.section_of(self, key, section)
        _native.drop_vector_index(self.slaf_path, section, key)
        self._reload()

    def vector_indexes(self) -> list[dict[str, Any]]:
        """The vector indexes of the obsm and varm keys (see :meth:`build_vector_index`).

        Examples
        --------
        >>> [i["key"] for i in data.vector_indexes()]                        # doctest: +SKIP
        ['X_scvi']
        """
        from slaf import knn

        return [knn.index_record(row) for row in _native.vector_indexes(self._native)]

    def info(self) -> None:
        """Print a summary: shape, format version, stored values, tables and keys."""
        print(self._native.info())

    def __repr__(self) -> str:
        n_cells, n_genes = self.shape
        return f"SLAFArray('{self.slaf_path}', n_cells={n_cells}, n_genes={n_genes})"
