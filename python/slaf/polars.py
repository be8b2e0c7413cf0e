"""Polars front end: lazy scans of SLAF datasets and tokenizer expressions, run in Rust.

>>> import polars as pl
>>> import slaf.polars as sp
>>> cells = sp.scan_slaf("pbmc.slaf", "cells").filter(pl.col("cell_type") == "B cell")
>>> per_cell = sp.scan_slaf("pbmc.slaf", "cells_x")  # cell_integer_id, gene_ids, values
>>> tokens = per_cell.select(sp.geneformer("gene_ids", "values", max_genes=2048))

``scan_slaf`` is a Polars IO source: projections, predicates, ``head``/``limit`` and the
engine's batch size reach the Rust reader. Predicates are translated into Lance filters where
possible (``explain()`` shows them in the scan node) and are re-applied to every batch, so
results are exact whether or not a predicate could be pushed down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from polars.io.plugins import register_io_source
from polars.plugins import register_plugin_function

from slaf import _native
from slaf._predicate import ids_of, to_lance_filter
from slaf.array import SLAFArray
from slaf.errors import InvalidArgumentError, ResourceLimitError

__all__ = [
    "ScanStats",
    "geneformer",
    "log1p",
    "normalize_total",
    "scan_slaf",
    "scgpt",
]

CELLS_X = "cells_x"
_DEFAULT_BATCH_ROWS = 65_536
_PLUGIN_PATH = Path(__file__).parent

IntoExpr = str | pl.Expr


@dataclass
class ScanStats:
    """What a ``scan_slaf`` query read, filled in as it runs (pass one to ``scan_slaf``).

    Attributes
    ----------
    rows_read
        Rows that came from storage, before the predicate was re-applied in Polars.
    rows_returned
        Rows handed to Polars.
    pushed_filter
        The Lance filter the scan used (``None`` when nothing could be pushed down).
    cells_selected
        For the expression table: how many cells' rows were read through their row ranges,
        when the predicate bounds ``cell_integer_id`` (``None``: a scan of the table).
    genes_selected
        For the expression table: how many genes' rows were read from the gene-major table,
        when the predicate bounds ``gene_integer_id`` and the planner picked that layout.
    """

    rows_read: int = 0
    rows_returned: int = 0
    pushed_filter: str | None = None
    cells_selected: int | None = None
    genes_selected: int | None = None


def _is_nested(dtype: pl.DataType) -> bool:
    return isinstance(dtype, (pl.List, pl.Array, pl.Struct))


def _schema(dataset: Any, table: str, layer: str | None) -> pl.Schema:
    empty = _native.NativeScan.schema_of(dataset, table, layer)
    return pl.DataFrame(empty).schema


def scan_slaf(
    source: str | Path | SLAFArray,
    table: str = "expression",
    *,
    layer: str | None = None,
    cell_filter: str | None = None,
    storage_options: dict[str, str] | None = None,
    stats: ScanStats | None = None,
) -> pl.LazyFrame:
    """Lazily scans a table of a SLAF dataset.

    Parameters
    ----------
    source
        Dataset path or URI, or an open ``SLAFArray``.
    table
        ``"expression"`` (COO rows), ``"cells"``, ``"genes"``, ``"layers"``, ``"obsp"``,
        ``"varp"`` (or a table key of ``config.json``), or ``"cells_x"``: one row per cell
        with ``cell_integer_id``, ``gene_ids`` and ``values`` lists (of X, or of ``layer``).
    layer
        For ``"cells_x"``: the layer whose values the lists hold (default: X).
    cell_filter
        For ``"cells_x"``: a Lance SQL predicate over the cells table (obs columns) choosing
        the cells, e.g. ``"cell_type = 'B cell'"``.
    storage_options
        Object-store options (credentials, endpoint) when ``source`` is a URI.
    stats
        Filled in with rows read and the pushed-down filter as the query runs.

    Returns
    -------
    polars.LazyFrame
        A lazy frame over the table; nothing is read until it is collected.
    """
    if isinstance(source, SLAFArray):
        dataset = source._native
    else:
        dataset = _native.NativeDataset(str(source), storage_options)
    if table != CELLS_X and (layer is not None or cell_filter is not None):
        raise InvalidArgumentError(
            f"layer and cell_filter apply to the per-cell list view ({CELLS_X!r}) only, "
            f"not to table {table!r}"
        )
    schema = _schema(dataset, table, layer)
    if table == CELLS_X:
        # Predicates on cell_integer_id select cells through the cells table.
        def pushable(c: str) -> bool:
            return c == "cell_integer_id"

    else:

        def pushable(c: str) -> bool:
            return c in schema and not _is_nested(schema[c])

    def source_batches(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        wanted = list(schema) if with_columns is None else list(with_columns)
        read = list(wanted)
        pushed = None
        cells = genes = None
        if predicate is not None:
            read += [c for c in predicate.meta.root_names() if c not in read]
            if table.lower() in ("expression", "x"):
                # A bound on cell_integer_id becomes the row ranges of those cells; one on
                # gene_integer_id those genes' ranges in the gene-major table, when the planner
                # finds that cheaper.
                n_cells, n_genes = dataset.shape
                cells = ids_of(predicate, "cell_integer_id", n_cells)
                genes = ids_of(predicate, "gene_integer_id", n_genes)
                cell_selector = ("all", None) if cells is None else _ids_selector(cells)
                if genes is not None and (
                    dataset.layout_for(cell_selector, _ids_selector(genes)) != "gene-major"
                ):
                    genes = None
            if cells is None and genes is None:
                pushed = to_lance_filter(predicate, pushable)
        if genes is not None:
            if stats is not None:
                stats.genes_selected = len(genes)
            scan = _native.NativeScan(dataset, table, read, None, None, None, _ids_selector(genes))
        elif cells is not None:
            if stats is not None:
                stats.cells_selected = len(cells)
            scan = _native.NativeScan(dataset, table, read, None, None, _ids_selector(cells))
        else:
            scan = _open_scan(dataset, table, read, pushed, cell_filter, layer, stats)
        remaining = n_rows
        while remaining is None or remaining > 0:
            # The engine's batch size, within the core's bound (rows are cut, not allocated).
            rows = min(batch_size or _DEFAULT_BATCH_ROWS, _native.LIMITS["max_batch_rows"])
            stream = scan.next_batch(rows)
            if stream is None:
                return
            df = pl.DataFrame(stream)
            if stats is not None:
                stats.rows_read += df.height
            if predicate is not None:
                df = df.filter(predicate)
            df = df.select(wanted)
            if remaining is not None:
                df = df.head(remaining)
                remaining -= df.height
            if stats is not None:
                stats.rows_returned += df.height
            yield df

    where = getattr(dataset, "uri", str(source))
    return register_io_source(
        source_batches,
        schema=schema,
        explain_name=f"slaf {table}",
        explain_detail=f"{where}" + (f", cells where {cell_filter}" if cell_filter else ""),
    )


def _ids_selector(ids: range | list[int]) -> tuple[str, Any]:
    if isinstance(ids, range):
        return ("range", (ids.start, ids.stop, 1))
    return ("ids", np.asarray(ids, dtype=np.int64).tobytes())


def _open_scan(
    dataset: Any,
    table: str,
    columns: list[str],
    pushed: str | None,
    cell_filter: str | None,
    layer: str | None,
    stats: ScanStats | None,
) -> Any:
    """Starts the native scan; a translated filter Lance rejects (e.g. a type it cannot
    compare) is dropped — the predicate is applied in Polars anyway — but the user's own
    ``cell_filter`` must be valid."""
    parts = [p for p in (cell_filter, pushed) if p]
    combined = " AND ".join(f"({p})" for p in parts) if len(parts) > 1 else next(iter(parts), None)
    try:
        scan = _native.NativeScan(dataset, table, columns, combined, layer)
    except InvalidArgumentError:
        if pushed is None:
            raise
        combined = cell_filter
        scan = _native.NativeScan(dataset, table, columns, combined, layer)
    if stats is not None:
        stats.pushed_filter = combined
    return scan


def _expr(e: IntoExpr) -> pl.Expr:
    return pl.col(e) if isinstance(e, str) else e


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    """Rejects a size keyword argument that is not an integer in ``[low, high]``, by name:
    the bounds are the core's (``slaf._native.LIMITS``), checked before Polars runs anything."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise InvalidArgumentError(f"{name} is {value}, must be at least {low}")
    if value > high:
        raise ResourceLimitError(
            f"resource limit exceeded: {name} is {value}, above the limit of {high}"
        )


def _check_flag(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True, False or None, got {value!r}")


def _check_number(name: str, value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float | np.number)
    ):
        raise TypeError(f"{name} must be a number, got {value!r}")


def _check_tokenize_kwargs(names: dict[str, str], kwargs: dict[str, Any]) -> None:
    """Checks the keyword arguments of :func:`geneformer` / :func:`scgpt`; ``names`` maps a
    plugin key to the parameter as the caller spelled it (``max_genes`` is scGPT's
    ``max_len``)."""
    limits = _native.LIMITS
    sizes = {
        "max_genes": (1, limits["max_seq_len"]),
        "n_bins": (2, limits["max_n_bins"]),
        "vocab_size": (1, limits["max_vocab_size"]),
        "n_genes": (0, limits["max_selection"]),
        "seed": (0, 2**64 - 1),
    }
    for key, (low, high) in sizes.items():
        _check_int(names.get(key, key), kwargs.get(key), low, high)
    for key in ("continuous", "log1p", "include_zero_genes", "pad"):
        _check_flag(names.get(key, key), kwargs.get(key))
    for key in ("target_sum", "normalize_total"):
        _check_number(names.get(key, key), kwargs.get(key))
    for key in ("token_dictionary", "gene_medians"):
        value = kwargs.get(key)
        if value is not None and not isinstance(value, str | Path):
            raise TypeError(f"{key} must be a path, got {value!r}")
    counts_scope = kwargs.get("counts_scope")
    if counts_scope is not None and not isinstance(counts_scope, str):
        raise TypeError(f"counts_scope must be 'all' or 'in_vocabulary', got {counts_scope!r}")


def _tokenize(args: list[pl.Expr], kwargs: dict[str, Any]) -> pl.Expr:
    defaults: dict[str, Any] = dict.fromkeys(
        [
            "max_genes",
            "vocab_size",
            "n_bins",
            "continuous",
            "seed",
            "token_dictionary",
            "gene_medians",
            "counts_scope",
            "target_sum",
            "normalize_total",
            "log1p",
            "include_zero_genes",
            "n_genes",
            "gene_names",
        ]
    )
    defaults.update(kwargs)
    for key in ("token_dictionary", "gene_medians"):
        if defaults[key] is not None:
            defaults[key] = str(defaults[key])
    if defaults["gene_names"] is not None:
        defaults["gene_names"] = [str(n) for n in defaults["gene_names"]]
    return register_plugin_function(
        plugin_path=_PLUGIN_PATH,
        function_name="tokenize",
        args=args,
        kwargs=defaults,
        is_elementwise=True,
    )


def geneformer(
    gene_ids: IntoExpr = "gene_ids",
    values: IntoExpr = "values",
    *,
    version: Literal["v1", "v2"] = "v1",
    max_genes: int | None = None,
    vocab_size: int | None = None,
    n_genes: int | None = None,
    gene_names: list[str] | None = None,
    token_dictionary: str | Path | None = None,
    gene_medians: str | Path | None = None,
    counts_scope: Literal["all", "in_vocabulary"] | None = None,
    target_sum: float | None = None,
    pad: bool = False,
) -> pl.Expr:
    """Geneformer rank-value encoding of cells given as gene-id and value (count) lists.

    Parameters
    ----------
    gene_ids, values
        List columns (or expressions) of one cell per row: gene_integer_ids and raw counts.
    version
        ``"v1"`` (2048 genes, no specials) or ``"v2"`` (``<cls>`` ... ``<eos>``, 4096).
    max_genes
        Sequence length (specials included); default per version.
    vocab_size
        Cap of the slaf vocabulary (genes whose token would reach it are dropped).
    n_genes
        Genes of the dataset: gene ids must be below it (default: ``len(gene_names)``, else
        not checked).
    gene_names
        ``gene_id`` of every gene_integer_id; needed with ``token_dictionary`` or
        ``gene_medians``, whose keys are gene names.
    token_dictionary, gene_medians
        Geneformer's token and gene-median dictionaries (pickle, JSON or TSV).
    counts_scope
        What the per-cell total sums over: ``"all"`` genes (default) or ``"in_vocabulary"``.
    target_sum
        Normalisation target (default 10,000).
    pad
        Pad each row to the sequence length with the PAD token (0).

    Returns
    -------
    polars.Expr
        ``List[Int64]`` token ids per cell (null where either input is null).
    """
    if version not in ("v1", "v2"):
        raise InvalidArgumentError(f"unknown Geneformer version {version!r}: use 'v1' or 'v2'")
    kwargs = {
        "tokenizer": "geneformer" if version == "v1" else "geneformer_v2",
        "max_genes": max_genes,
        "vocab_size": vocab_size,
        "n_genes": n_genes,
        "gene_names": gene_names,
        "token_dictionary": token_dictionary,
        "gene_medians": gene_medians,
        "counts_scope": counts_scope,
        "target_sum": target_sum,
        "pad": pad,
    }
    _check_tokenize_kwargs({}, kwargs)
    return _tokenize([_expr(gene_ids), _expr(values)], kwargs)


def scgpt(
    gene_ids: IntoExpr = "gene_ids",
    values: IntoExpr = "values",
    cell_ids: IntoExpr | None = None,
    *,
    max_len: int | None = None,
    n_bins: int | None = None,
    continuous: bool = False,
    seed: int | None = None,
    normalize_total: float | None = None,
    log1p: bool | None = None,
    include_zero_genes: bool | None = None,
    vocab_size: int | None = None,
    n_genes: int | None = None,
    gene_names: list[str] | None = None,
    token_dictionary: str | Path | None = None,
    counts_scope: Literal["all", "in_vocabulary"] | None = None,
    pad: bool = False,
) -> pl.Expr:
    """scGPT tokenization: ``<cls>`` then genes with binned (or continuous) values.

    Parameters
    ----------
    gene_ids, values
        List columns (or expressions) of one cell per row: gene_integer_ids and raw counts.
    cell_ids
        Column of cell ids seeding each cell's random draws (tie-breaking, subsampling). Without
        it the row number within the batch Polars hands over is used, which depends on how
        the engine splits the data: pass ``"cell_integer_id"`` for reproducible tokens.
    max_len
        Sequence length, ``<cls>`` included (default 1200).
    n_bins
        Number of value bins (default 51).
    continuous
        Keep (normalised) values instead of bins.
    seed
        Seed of the random draws (default 0).
    normalize_total
        Scale each cell to this total first (scanpy's ``normalize_total``).
    log1p
        Apply ``log1p`` after normalisation.
    include_zero_genes
        In-vocabulary genes without counts take part with value 0 (needs ``n_genes`` or
        ``gene_names``).
    vocab_size, n_genes, gene_names, token_dictionary, counts_scope
        As for :func:`geneformer`.
    pad
        Pad each row to ``max_len`` (ids with PAD, values with -2).

    Returns
    -------
    polars.Expr
        ``Struct{input_ids: List[Int64], values: List[Float32]}`` per cell.
    """
    if include_zero_genes and n_genes is None and gene_names is None:
        raise InvalidArgumentError(
            "include_zero_genes needs the dataset's gene count: pass n_genes or gene_names"
        )
    if continuous and n_bins is not None:
        raise InvalidArgumentError("n_bins cannot be combined with continuous=True")
    args = [_expr(gene_ids), _expr(values)]
    if cell_ids is not None:
        args.append(_expr(cell_ids))
    kwargs = {
        "tokenizer": "scgpt",
        "max_genes": max_len,
        "n_bins": n_bins,
        "continuous": True if continuous else None,
        "seed": seed,
        "normalize_total": normalize_total,
        "log1p": log1p,
        "include_zero_genes": include_zero_genes,
        "vocab_size": vocab_size,
        "n_genes": n_genes,
        "gene_names": gene_names,
        "token_dictionary": token_dictionary,
        "counts_scope": counts_scope,
        "pad": pad,
    }
    _check_tokenize_kwargs({"max_genes": "max_len"}, kwargs)
    return _tokenize(args, kwargs)


def normalize_total(values: IntoExpr = "values", target_sum: float = 1e4) -> pl.Expr:
    """Scales each cell's values (a list per row) to sum to ``target_sum``, as scanpy's
    ``normalize_total`` does; cells without counts stay zero.

    Parameters
    ----------
    values
        List column (or expression) of a cell's values.
    target_sum
        The total of every cell afterwards.

    Returns
    -------
    polars.Expr
        A list column of the same length per row.
    """
    total = pl.element().sum()
    scaled = pl.when(total > 0).then(pl.element() / total * target_sum).otherwise(pl.element())
    return _expr(values).list.eval(scaled)


def log1p(values: IntoExpr = "values") -> pl.Expr:
    """``log(1 + x)`` of every value of a list column.

    Parameters
    ----------
    values
        List column (or expression) of a cell's values.

    Returns
    -------
    polars.Expr
        A list column of the same length per row.
    """
    return _expr(values).list.eval(pl.element().log1p())
