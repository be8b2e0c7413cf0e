"""What each tool runs for each scenario.

A scenario gives each tool either a snippet for the suite's harness (``runner.HARNESS``: the
snippet defines ``run()``, timed, returning a checksum; optionally ``setup()``, ``before()`` and
``check(result)``, untimed), or a reuse of an existing benchmark's runner (``bench_pp``,
``bench_loader``, ``bench_gene_major``, ``bench_python_layer``), or a short reason why it cannot
run it. Snippets see ``P`` (the selections, the tool's ``path``, ``TOOL``) and the helpers of
``PRELUDE``.

The random-access rows (open, one cell, 500 × 500, 1,000 and 10,000 random cells, cells by a
metadata predicate) also run ours on the copy slafdb's converter wrote, and two readers of a
Parquet copy of the expression table (DuckDB, pyarrow): see ``RANDOM_ACCESS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import bench_gene_major
import bench_loader
import bench_pp
import bench_python_layer
from suite.data import Dataset
from suite.tools import Tool

# Helpers every snippet may use; D is the opened dataset (setup() opens it).
PRELUDE = r"""
import hashlib
import numpy as np
TOOL = P["tool"]
# Our package: on our dataset, on it with the cell cache off (every repetition reads storage),
# or on slafdb's copy.
OURS = ("ours", "ours_no_cache", "ours_on_slafdb")
SLAF = (*OURS, "slafdb")  # a SLAFArray
D = None

def open_data():
    if TOOL in SLAF:
        from slaf import SLAFArray
        d = SLAFArray(P["path"])
        if TOOL == "ours_no_cache":
            d.cell_cache_bytes = 0
        if hasattr(d, "wait_for_metadata"):  # slafdb loads obs/var in a background thread
            d.wait_for_metadata()
        return d
    if TOOL.startswith("anndata"):
        import anndata as ad
        return ad.read_h5ad(P["path"], backed="r" if TOOL == "anndata_backed" else None)
    if TOOL == "parquet_pyarrow":  # obs and var read, the expression file's footer read
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq
        from types import SimpleNamespace
        return SimpleNamespace(
            obs=pq.read_table(P["path"] + "/cells.parquet"),
            var=pq.read_table(P["path"] + "/genes.parquet"),
            expression=ds.dataset(P["path"] + "/expression.parquet", format="parquet"),
        )
    if TOOL == "parquet_duckdb":  # the same through DuckDB; a view binds (reads) the footer
        import duckdb
        from types import SimpleNamespace
        con = duckdb.connect()
        con.execute("SET parquet_metadata_cache = true")  # footers kept across queries
        read = "SELECT * FROM read_parquet('" + P["path"] + "/{}.parquet')"
        con.execute("CREATE VIEW expression AS " + read.format("expression"))
        d = SimpleNamespace(con=con, obs=con.sql(read.format("cells")).to_arrow_table(),
                            var=con.sql(read.format("genes")).to_arrow_table())
        con.register("obs", d.obs)
        return d
    import tiledbsoma
    return tiledbsoma.Experiment.open(P["path"])

def setup():
    global D
    D = open_data()

def values_check(rows, values):
    return [int(rows), round(float(np.asarray(values, dtype=np.float64).sum()), 1)]

def ids_check(ids):
    ids = sorted(str(i) for i in ids)
    return [len(ids), hashlib.md5("\n".join(ids).encode()).hexdigest()[:12]]
"""

OPEN = r"""
def setup():
    pass

def run():
    d = open_data()
    if TOOL in SLAF:
        return [int(d.obs.height), int(d.var.height)]
    if TOOL.startswith("anndata"):
        return [int(d.n_obs), int(d.n_vars)]
    if TOOL.startswith("parquet"):
        return [d.obs.num_rows, d.var.num_rows]
    return [int(d.obs.count), int(d.ms["RNA"].var.count)]
"""

CONVERT = r"""
import shutil
OUT = P["scratch"] + "/" + TOOL

def setup():
    pass

def before():
    shutil.rmtree(OUT, ignore_errors=True)

def run():
    if TOOL == "ours":
        import slaf
        slaf.convert(P["h5ad"], OUT, overwrite=True)  # builds the gene-major table too
    elif TOOL == "slafdb":
        import logging
        logging.disable(logging.CRITICAL)
        from slaf.data import SLAFConverter
        SLAFConverter(chunked=True).convert(P["h5ad"], OUT)
    else:
        import tiledbsoma.io
        tiledbsoma.io.from_h5ad(OUT, P["h5ad"], measurement_name="RNA")

def check(_):
    if TOOL == "soma":
        import tiledbsoma
        with tiledbsoma.Experiment.open(OUT) as e:
            out = [int(e.obs.count), int(e.ms["RNA"].X["data"].nnz)]
    else:
        import lance
        out = [lance.dataset(OUT + "/cells.lance").count_rows(),
               lance.dataset(OUT + "/expression.lance").count_rows()]
    shutil.rmtree(OUT, ignore_errors=True)
    return out
"""

CELL_FILTER = r"""
def run():
    ct, donor = P["cell_type"], P["donor"]
    if TOOL in ("ours", "slafdb"):  # both give obs as a polars frame
        import polars as pl
        obs = D.obs.filter((pl.col("cell_type") == ct) & (pl.col("donor_id") == donor))
        return ids_check(obs["cell_id"].to_list())
    if TOOL.startswith("anndata"):
        obs = D.obs
        return ids_check(obs.index[(obs["cell_type"] == ct) & (obs["donor_id"] == donor)])
    where = f"cell_type == '{ct}' and donor_id == '{donor}'"
    table = D.obs.read(column_names=["obs_id"], value_filter=where).concat()
    return ids_check(table["obs_id"].to_pylist())
"""

# cells × genes by integer id (genes None: all genes); every tool returns the stored values:
# ours a CSR (format="csr", what anndata returns), slafdb its long frame (it has no CSR format),
# SOMA and the Parquet readers Arrow tables of (cell, gene, value).
READ = r"""
def read(cells, genes):
    if TOOL in OURS:
        x = D.get_submatrix(cells, genes, format="csr")
        return values_check(x.nnz, x.data)
    if TOOL == "slafdb":
        df = D.get_submatrix(cells, genes)  # a long frame: cell_id, gene_id, value
        return values_check(df.height, df["value"])
    if TOOL == "anndata_backed":  # one indexing: a backed view cannot be sliced again
        x = D[cells].X if genes is None else D[cells, genes].X
        return values_check(x.nnz, x.data)
    if TOOL == "anndata_memory":
        x = D.X[cells] if genes is None else D.X[cells][:, genes]
        return values_check(x.nnz, x.data)
    if TOOL == "parquet_pyarrow":  # filters on the ids: row groups pruned by their min/max
        import pyarrow.dataset as ds
        where = ds.field("cell_integer_id").isin(cells)
        if genes is not None:
            where = where & ds.field("gene_integer_id").isin(genes)
        table = D.expression.to_table(filter=where)
        return values_check(table.num_rows, table["value"])
    if TOOL == "parquet_duckdb":  # semi-joins: DuckDB prunes row groups by the ids' range
        import pyarrow as pa
        D.con.register("want_cells", pa.table({"id": pa.array(cells, pa.uint32())}))
        sql = ("SELECT e.* FROM expression e "
               "SEMI JOIN want_cells c ON e.cell_integer_id = c.id")
        if genes is not None:
            D.con.register("want_genes", pa.table({"id": pa.array(genes, pa.uint16())}))
            sql += " SEMI JOIN want_genes g ON e.gene_integer_id = g.id"
        table = D.con.sql(sql).to_arrow_table()
        return values_check(table.num_rows, table["value"])
    coords = (cells,) if genes is None else (cells, genes)
    table = D.ms["RNA"].X["data"].read(coords=coords).tables().concat()
    return values_check(table.num_rows, table["soma_data"])
"""

SUBMATRIX = (
    READ
    + r"""
def run():
    return read(P["cells"], P["genes"])
"""
)

# The cells of one type and donor, chosen on obs (in memory after opening, for every tool but
# SOMA), then all of their expression (as SUBMATRIX reads it).
PREDICATE = (
    READ
    + r"""
def chosen_cells():
    ct, donor = P["cell_type"], P["donor"]
    if TOOL in SLAF:
        import polars as pl
        obs = D.obs.filter((pl.col("cell_type") == ct) & (pl.col("donor_id") == donor))
        return obs["cell_integer_id"].to_list()
    if TOOL.startswith("anndata"):
        obs = D.obs
        return np.flatnonzero((obs["cell_type"] == ct) & (obs["donor_id"] == donor)).tolist()
    if TOOL == "parquet_pyarrow":
        import pyarrow.compute as pc
        mask = pc.and_(pc.equal(D.obs["cell_type"], ct), pc.equal(D.obs["donor_id"], donor))
        return D.obs.filter(mask)["cell_integer_id"].to_pylist()
    if TOOL == "parquet_duckdb":
        rows = D.con.execute("SELECT cell_integer_id FROM obs WHERE cell_type = ? "
                             "AND donor_id = ? ORDER BY 1", [ct, donor]).fetchall()
        return [row[0] for row in rows]
    where = f"cell_type == '{ct}' and donor_id == '{donor}'"
    table = D.obs.read(column_names=["soma_joinid"], value_filter=where).concat()
    return sorted(table["soma_joinid"].to_pylist())

def run():
    return read(chosen_cells(), None)
"""
)

# Total counts per cell type: a join of expression with cells in SQL (ours, slafdb); the
# others sum X per cell and group with pandas.
SQL_EXPRESSION = r"""
def run():
    if TOOL in ("ours", "slafdb"):
        df = D.query(P["expression_sql"])
        totals = dict(zip(df["cell_type"].to_list(), df["total"].to_list()))
    else:
        import pandas as pd
        if TOOL == "anndata_memory":
            per_cell = np.asarray(D.X.sum(axis=1), dtype=np.float64).ravel()
            types = D.obs["cell_type"].to_numpy()
        elif TOOL == "anndata_backed":
            per_cell = np.concatenate([np.asarray(c.sum(axis=1), dtype=np.float64).ravel()
                                       for c, _, _ in D.chunked_X(10_000)])
            types = D.obs["cell_type"].to_numpy()
        else:
            X = D.ms["RNA"].X["data"]
            per_cell = np.zeros(X.shape[0])
            for t in X.read().tables():
                per_cell += np.bincount(np.asarray(t["soma_dim_0"]), minlength=X.shape[0],
                                        weights=np.asarray(t["soma_data"], dtype=np.float64))
            obs = D.obs.read(column_names=["soma_joinid", "cell_type"]).concat().to_pandas()
            types = obs.sort_values("soma_joinid")["cell_type"].to_numpy()
        totals = pd.Series(per_cell).groupby(types).sum().to_dict()
    pairs = sorted(f"{k}:{round(float(v))}" for k, v in totals.items())
    return [len(pairs), hashlib.md5("\n".join(pairs).encode()).hexdigest()[:12]]
"""

# scDataset (block-shuffled, fetches of 16 batches) over anndata backed: one epoch of raw CSR
# batches, opening included as the other loaders' setup is.
SCDATASET = r"""
def setup():
    pass

def run():
    import anndata as ad
    from scdataset import scDataset
    from scdataset.strategy import BlockShuffling
    adata = ad.read_h5ad(P["path"], backed="r")
    loader = scDataset(adata, BlockShuffling(block_size=8), batch_size=P["batch_size"],
                       fetch_factor=16, fetch_callback=lambda data, idx: data.X[idx],
                       batch_callback=lambda fetched, idx: fetched[idx], seed=0)
    cells = 0
    for batch in loader:
        cells += batch.shape[0]
    return [cells]
"""

EXPRESSION_SQL = (
    "SELECT c.cell_type, SUM(e.value) AS total FROM expression e "
    "JOIN cells c ON e.cell_integer_id = c.cell_integer_id GROUP BY c.cell_type"
)
CELLS_SQL = (
    "SELECT cell_type, AVG(total_counts) AS avg_counts, COUNT(*) AS n FROM cells "
    "WHERE donor_id = 'D3' GROUP BY cell_type ORDER BY cell_type"
)
LOADER_BATCH = 32
LOADER_MAX_GENES = 2048

# A reused runner: (tool, data, selections, reps, timeout) -> the runner's result.
External = Callable[[Tool, Dataset, dict, int, float], dict]


@dataclass(frozen=True)
class Scenario:
    """One row of the comparison.

    Parameters
    ----------
    key, label, group
        Its name in the JSON, its row heading and its panel in the plot.
    description
        What each tool does, for the JSON and RESULTS.md.
    snippet
        Harness code run by the tools in ``tools``.
    tools
        The tools that run ``snippet``.
    external
        Tools that run a reused benchmark runner instead.
    marks
        Why each remaining tool cannot run it.
    params
        Extra values for ``P``.
    slow
        Few repetitions (``--reps-slow``) and no warm-up: a run takes seconds to minutes.
    fresh_each_rep
        Each repetition in its own process (what is timed would be cached in-process).
    """

    key: str
    label: str
    group: str
    description: str
    snippet: str = ""
    tools: tuple[str, ...] = ()
    external: dict[str, External] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    slow: bool = False
    fresh_each_rep: bool = False


def path_for(tool: str, data: Dataset) -> str | None:
    """The copy of the data ``tool`` reads (ours: the one with the gene-major table); None when
    that copy was not made (its tool is not installed)."""
    paths = {
        "ours": data.indexed,
        "ours_no_cache": data.indexed,
        "ours_on_slafdb": data.slafdb_copy,
        "slafdb": data.plain,
        "soma": data.soma,
        "parquet_duckdb": data.parquet,
        "parquet_pyarrow": data.parquet,
    }
    path = paths.get(tool, data.h5ad)
    return None if path is None else str(path)


def _gene_major(query: str) -> External:
    def run(tool: Tool, data: Dataset, sel: dict, reps: int, timeout: float) -> dict:
        path = path_for(tool.key, data)
        return bench_gene_major.run(tool.python, tool.key, query, path, sel, reps)

    return run


def _python_layer(query: str) -> External:
    def run(tool: Tool, data: Dataset, sel: dict, reps: int, timeout: float) -> dict:
        params = {**sel, "mask_type": sel["cell_type"], "metadata_sql": CELLS_SQL}
        paths = (path_for(tool.key, data), data.h5ad)
        return bench_python_layer.run(tool.python, tool.key, query, paths, params, reps)

    return run


def _pp(tool: Tool, data: Dataset, sel: dict, reps: int, timeout: float) -> dict:
    name = "scanpy" if tool.key == "anndata_memory" else tool.key
    paths = (path_for(tool.key, data), data.h5ad)
    runs = [bench_pp.run(tool.python, name, paths, sel["pp"]) for _ in range(reps)]
    if "error" in runs[-1]:
        return runs[-1]
    out = {
        "times": [r["total_s"] for r in runs],
        "check": runs[-1]["check"],
        "peak_mib": max(r["peak_mib"] for r in runs),
    }
    if runs[-1]["missing"]:  # a partial recipe's time is not comparable
        done = ", ".join(runs[-1]["steps"])
        return {"error": f"partial: lacks {'; '.join(runs[-1]['missing'])} (ran {done})"}
    return out


def _loader(mode: str) -> External:
    def run(tool: Tool, data: Dataset, sel: dict, reps: int, timeout: float) -> dict:
        args = SimpleNamespace(
            batch_size=LOADER_BATCH, max_genes=LOADER_MAX_GENES, cuda=False, timeout=timeout
        )
        path = path_for(tool.key, data)
        runs = [
            bench_loader.run(tool.python, path, mode, args, tool.key == "ours") for _ in range(reps)
        ]
        if "error" in runs[-1]:
            return runs[-1]
        last = runs[-1]
        out = {
            "times": [r["setup_s"] + r["loop_s"] for r in runs],
            "check": [last["first_cells"] + last["cells"]],
            "peak_mib": max(r["peak_mb"] for r in runs),
        }
        if mode != "raw":  # special tokens differ by tokenizer: recorded, not compared
            out["note"] = f"{last['first_tokens'] + last['tokens']:,} non-pad tokens"
        return out

    return run


SLAF_TOOLS = ("ours", "slafdb")
READERS = ("ours", "slafdb", "anndata_backed", "anndata_memory", "soma")
# The tools of the random-access rows (issue #18): the readers, ours with the cell cache off
# (repetitions read the same cells: the cache answers them from memory), ours on the copy
# slafdb wrote, and two readers of the Parquet copy.
RANDOM_ACCESS_ONLY = ("ours_no_cache", "ours_on_slafdb", "parquet_duckdb", "parquet_pyarrow")
RANDOM_ACCESS = (*READERS, *RANDOM_ACCESS_ONLY)
NOT_LOADER = "n/a: not a loader"
LOADERS_ONLY = {"scdataset": NOT_LOADER, "annbatch": NOT_LOADER}
# What the random-access-only tools show in the other rows.
OTHER_ROWS = {key: "n/a: random-access rows only" for key in RANDOM_ACCESS_ONLY}


def scenarios(sel: dict) -> list[Scenario]:
    """Every scenario, in table order.

    Parameters
    ----------
    sel
        The selections (``data.selections``), for the labels.

    Returns
    -------
    list
        The scenarios.
    """
    no_sql = "no SQL"
    reads = {"snippet": SUBMATRIX, "tools": RANDOM_ACCESS, "marks": LOADERS_ONLY}
    others = LOADERS_ONLY | OTHER_ROWS
    loader_marks = {
        "anndata_backed": "n/a: no loader (see scDataset)",
        "anndata_memory": "n/a: no loader",
        "soma": "n/a: loader not benchmarked",
        "annbatch": "not installable on Python 3.11 (needs ≥ 3.12)",
        **OTHER_ROWS,
    }
    read_how = (
        "get_submatrix(cells, genes, format='csr') (ours, also on slafdb's copy: a scipy CSR, "
        "as anndata returns), get_submatrix (slafdb: its long frame), X[cells, genes] "
        "(anndata), X.read(coords) (SOMA), a filter on cell_integer_id (and gene_integer_id) "
        "pruning row groups by their statistics (Parquet: pyarrow.dataset isin; DuckDB "
        "semi-joins on read_parquet)"
    )
    out = [
        Scenario(
            "convert",
            "convert h5ad",
            "convert & open",
            "h5ad → the tool's format: ours slaf.convert (with the gene-major table), slafdb "
            "SLAFConverter(chunked=True), TileDB-SOMA tiledbsoma.io.from_h5ad",
            CONVERT,
            ("ours", "slafdb", "soma"),
            marks={
                "anndata_backed": "n/a: reads h5ad as is",
                "anndata_memory": "n/a: reads h5ad as is",
                **others,
            },
            slow=True,
        ),
        Scenario(
            "open",
            "open (obs/var ready)",
            "convert & open",
            "open the dataset until obs and var are loaded (slafdb: wait_for_metadata; "
            "anndata: read_h5ad; SOMA: Experiment.open + counts; Parquet: cells.parquet and "
            "genes.parquet read, expression.parquet's footer read by pyarrow.dataset or bound "
            "in a DuckDB view); a fresh process per run",
            OPEN,
            RANDOM_ACCESS,
            marks=LOADERS_ONLY,
            fresh_each_rep=True,
        ),
        Scenario(
            "cell_filter",
            "cells by type & donor",
            "metadata & SQL",
            f"ids of the cells with cell_type '{sel['cell_type']}' and donor '{sel['donor']}': "
            "polars filter on obs (ours, slafdb), pandas on obs (anndata), value_filter (SOMA)",
            CELL_FILTER,
            READERS,
            marks=others,
        ),
        Scenario(
            "gene_filter",
            "genes with total > T",
            "metadata & SQL",
            "ids of the genes whose total counts exceed T (≈1 % of genes): ours the stored "
            "per-gene totals (SQL on genes), slafdb SQL GROUP BY over expression, anndata/SOMA "
            "sum X per gene (backed and SOMA streamed); bench_gene_major's runner",
            external={t: _gene_major("high_genes") for t in READERS},
            marks=others,
        ),
        Scenario(
            "sql_cells",
            "SQL group-by on cells",
            "metadata & SQL",
            "average total counts and cell count per cell type for one donor: SQL via "
            "SLAFArray.query (ours, slafdb), pandas groupby on obs (anndata); "
            "bench_python_layer's runner",
            external={t: _python_layer("metadata") for t in READERS[:4]},
            marks={"soma": no_sql, **others},
        ),
        Scenario(
            "sql_expression",
            "SQL join: counts per type",
            "metadata & SQL",
            "total counts per cell type, a join of expression with cells: SQL via "
            "SLAFArray.query (ours, slafdb); X summed per cell then pandas groupby (anndata, "
            "SOMA; backed and SOMA streamed)",
            SQL_EXPRESSION,
            READERS,
            marks=others,
            params={"expression_sql": EXPRESSION_SQL},
        ),
        Scenario(
            "one_cell",
            "1 cell",
            "expression reads",
            f"one cell's stored values: {read_how}",
            **reads,
            params={"cells": [sel["cell"]], "genes": None},
        ),
        Scenario(
            "ten_genes",
            "10 genes × all cells",
            "expression reads",
            "all values of 10 random genes: get_gene_expression (ours, slafdb), X[:, genes] "
            "(anndata), X.read(coords) (SOMA); bench_gene_major's runner",
            external={t: _gene_major("ten_genes") for t in READERS},
            marks=others,
        ),
        Scenario(
            "submatrix",
            "500 × 500 random",
            "expression reads",
            "500 random cells × 500 random genes, as in one_cell",
            **reads,
            params={"cells": sel["cells500"], "genes": sel["genes500"]},
        ),
        Scenario(
            "cells_1000",
            "1,000 random cells",
            "expression reads",
            "all values of 1,000 random cells, as in one_cell",
            **reads,
            params={"cells": sel["cells1000"], "genes": None},
        ),
        Scenario(
            "cells_10000",
            f"{len(sel['cells10000']):,} random cells",
            "expression reads",
            f"all values of {len(sel['cells10000']):,} random cells (all cells when there are "
            "fewer), as in one_cell",
            **reads,
            params={"cells": sel["cells10000"], "genes": None},
        ),
        Scenario(
            "predicate_cells",
            "type & donor → expression",
            "expression reads",
            f"the cells with cell_type '{sel['cell_type']}' and donor '{sel['donor']}' chosen "
            "on obs (polars on obs: ours, slafdb; pandas: anndata; pyarrow.compute or DuckDB "
            "SQL on cells.parquet read at open: Parquet; value_filter: SOMA), then all of their "
            "values, read as in one_cell",
            PREDICATE,
            RANDOM_ACCESS,
            marks=LOADERS_ONLY,
        ),
        Scenario(
            "pp",
            "pp recipe",
            "pipelines",
            "qc → filter_cells → filter_genes → normalize_total → log1p → HVG (seurat) → PCA: "
            "slaf.pp out of core on read_slaf (ours), slafdb's pp, scanpy on the h5ad read in "
            "memory (anndata in memory column); bench_pp's runner",
            external={"ours": _pp, "slafdb": _pp, "anndata_memory": _pp},
            marks={"anndata_backed": "n/a: scanpy needs X in memory", "soma": "n/a: no pp"}
            | others,
            slow=True,
        ),
    ]
    for mode in ("raw", "geneformer", "scgpt"):
        marks = dict(loader_marks)
        external = {"ours": _loader(mode), "slafdb": _loader(mode)}
        if mode != "raw":
            marks["scdataset"] = "n/a: no tokenizer"
        out.append(
            Scenario(
                f"loader_{mode}",
                f"loader epoch: {mode}",
                "pipelines",
                f"one epoch of {mode} batches of {LOADER_BATCH} (max_genes {LOADER_MAX_GENES}),"
                " construction included: SLAFDataLoader (ours, slafdb; bench_loader's runner)"
                + (", scDataset over anndata backed" if mode == "raw" else ""),
                SCDATASET if mode == "raw" else "",
                ("scdataset",) if mode == "raw" else (),
                external=external,
                marks=marks,
                params={"batch_size": LOADER_BATCH},
                slow=True,
            )
        )
    return out
