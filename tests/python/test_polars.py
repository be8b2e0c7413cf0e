"""The Polars front end: ``scan_slaf`` (IO source, pushdown) and the tokenizer expressions."""

from __future__ import annotations

import json
from pathlib import Path

import lance
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import slaf
import slaf.polars as sp

from conftest import FIXTURES, needs_fixtures, stand_in

# Without the shared data, the generated stand-ins of the same shapes and columns.
PBMC = FIXTURES / stand_in("pbmc68k_reduced_inmemory.slaf")
PERTURB = FIXTURES / stand_in("perturb500_chunked.slaf")


def lance_table(dataset: Path, table: str) -> pl.DataFrame:
    """A whole table read with pylance, the independent reference."""
    name = json.loads((dataset / "config.json").read_text())["tables"][table]
    return pl.from_arrow(lance.dataset(str(dataset / name)).to_table())


# --- scan_slaf over tables --------------------------------------------------------------------


@pytest.mark.parametrize("table", ["cells", "genes", "expression"])
def test_scan_equals_the_stored_table(fixture_name: str, table: str) -> None:
    path = FIXTURES / fixture_name
    got = sp.scan_slaf(path, table).collect()
    assert_frame_equal(got, lance_table(path, table))


@needs_fixtures
def test_projection_keeps_the_asked_order() -> None:
    got = sp.scan_slaf(PBMC, "cells").select("louvain", "cell_integer_id").collect()
    want = lance_table(PBMC, "cells").select("louvain", "cell_integer_id")
    assert_frame_equal(got, want)


@needs_fixtures
def test_predicate_is_pushed_down_and_exact() -> None:
    stats = sp.ScanStats()
    lf = sp.scan_slaf(PBMC, "expression", stats=stats).filter(
        (pl.col("gene_integer_id") < 20) & (pl.col("value") > 1.0)
    )
    plan = lf.explain()
    assert "slaf expression" in plan and "SELECTION" in plan, plan
    assert "FILTER" not in plan, plan  # the predicate sits in the scan node
    got = lf.collect()
    want = lance_table(PBMC, "expression").filter(
        (pl.col("gene_integer_id") < 20) & (pl.col("value") > 1.0)
    )
    assert_frame_equal(got, want)
    assert stats.pushed_filter == "(`gene_integer_id` < 20) AND (`value` > 1.0)"
    assert stats.rows_read == got.height  # Lance returned only matching rows
    assert 0 < got.height < 535433


@needs_fixtures
@pytest.mark.parametrize(
    ("predicate", "cells"),
    [
        (pl.col("cell_integer_id") < 20, range(20)),
        ((pl.col("cell_integer_id") >= 100) & (pl.col("value") > 1.0), range(100, 700)),
        (pl.col("cell_integer_id").is_in([3, 5, 600, 5000]), [3, 5, 600]),
        (
            pl.col("cell_integer_id").is_between(10, 12) & (pl.col("gene_integer_id") == 7),
            [10, 11, 12],
        ),
        (pl.col("cell_integer_id") > 695, range(696, 700)),
        (pl.col("cell_integer_id") > 5000, []),
    ],
)
def test_cell_bounds_read_only_those_cells_rows(predicate: pl.Expr, cells: list[int]) -> None:
    stats = sp.ScanStats()
    got = sp.scan_slaf(PBMC, "expression", stats=stats).filter(predicate).collect()
    table = lance_table(PBMC, "expression")
    assert_frame_equal(got, table.filter(predicate))
    assert stats.cells_selected == len(cells)
    assert stats.pushed_filter is None
    assert stats.rows_read == table.filter(pl.col("cell_integer_id").is_in(list(cells))).height
    if cells:
        # Also in the streaming engine and with a projection that leaves out the column.
        streamed = (
            sp.scan_slaf(PBMC, "expression")
            .filter(predicate)
            .select("value")
            .collect(engine="streaming")
        )
        assert_frame_equal(streamed, got.select("value"))


@needs_fixtures
def test_untranslatable_predicates_are_still_applied() -> None:
    stats = sp.ScanStats()
    lf = sp.scan_slaf(PBMC, "cells", stats=stats)
    # A string method has no translation: the predicate runs in Polars only.
    got = lf.filter(pl.col("cell_id").str.starts_with("AAAC")).collect()
    want = lance_table(PBMC, "cells").filter(pl.col("cell_id").str.starts_with("AAAC"))
    assert_frame_equal(got, want)
    assert stats.pushed_filter is None
    assert stats.rows_read == 700
    # A conjunct is pushed, the other is kept in Polars.
    stats2 = sp.ScanStats()
    lf = sp.scan_slaf(PBMC, "cells", stats=stats2).filter(
        pl.col("cell_id").str.ends_with("-1") & pl.col("louvain").is_in(["1", "2"])
    )
    want = lance_table(PBMC, "cells").filter(
        pl.col("cell_id").str.ends_with("-1") & pl.col("louvain").is_in(["1", "2"])
    )
    assert_frame_equal(lf.collect(), want)
    assert stats2.pushed_filter == "`louvain` IN ('1', '2')"
    assert stats2.rows_read < 700


@needs_fixtures
def test_head_reads_no_more_than_needed() -> None:
    stats = sp.ScanStats()
    got = sp.scan_slaf(PERTURB, "expression", stats=stats).head(7).collect()
    assert got.height == 7
    assert_frame_equal(got, lance_table(PERTURB, "expression").head(7))
    assert stats.rows_returned == 7


@needs_fixtures
def test_streaming_engine_and_small_batches() -> None:
    lf = sp.scan_slaf(PERTURB, "expression").filter(pl.col("gene_integer_id") == 3)
    eager = lf.collect()
    streaming = lf.collect(engine="streaming")
    assert_frame_equal(streaming, eager)
    totals = (
        sp.scan_slaf(PERTURB, "expression")
        .group_by("cell_integer_id")
        .agg(pl.col("value").sum())
        .sort("cell_integer_id")
        .collect(engine="streaming")
    )
    x = slaf.SLAFArray(PERTURB).get_submatrix(format="csr")
    sums = np.asarray(x.sum(axis=1)).ravel()
    ids = totals["cell_integer_id"].to_numpy()
    np.testing.assert_allclose(totals["value"].to_numpy(), sums[ids], rtol=1e-5)


@needs_fixtures
def test_open_slafarray_is_accepted() -> None:
    data = slaf.SLAFArray(PBMC)
    assert sp.scan_slaf(data, "genes").select(pl.len()).collect().item() == 765


# --- the per-cell list view -------------------------------------------------------------------


def test_cells_x_equals_the_submatrix(fixture_name: str) -> None:
    path = FIXTURES / fixture_name
    x = slaf.SLAFArray(path).get_submatrix(format="csr")
    got = sp.scan_slaf(path, "cells_x").collect()
    assert got.columns == ["cell_integer_id", "gene_ids", "values"]
    assert got["cell_integer_id"].to_list() == list(range(x.shape[0]))
    assert got["gene_ids"].list.len().to_numpy().tolist() == np.diff(x.indptr).tolist()
    np.testing.assert_array_equal(got["gene_ids"].explode().drop_nulls().to_numpy(), x.indices)
    np.testing.assert_array_equal(got["values"].explode().drop_nulls().to_numpy(), x.data)


@needs_fixtures
def test_cells_x_predicates_select_cells() -> None:
    stats = sp.ScanStats()
    lf = sp.scan_slaf(PBMC, "cells_x", stats=stats).filter(
        pl.col("cell_integer_id").is_in([3, 5, 600])
    )
    got = lf.collect()
    assert got["cell_integer_id"].to_list() == [3, 5, 600]
    assert stats.rows_read == 3
    x = slaf.SLAFArray(PBMC).get_submatrix([3, 5, 600], format="csr")
    assert got["gene_ids"].to_list() == [x[i].indices.tolist() for i in range(3)]

    louvain = lance_table(PBMC, "cells").filter(pl.col("louvain") == "3")
    got = sp.scan_slaf(PBMC, "cells_x", cell_filter="louvain = '3'").collect()
    assert sorted(got["cell_integer_id"].to_list()) == sorted(louvain["cell_integer_id"].to_list())


def test_cells_x_of_a_layer(halves: tuple) -> None:
    adata, a, _ = halves
    out = a.parent / "polars-layers.slaf"
    slaf.convert(str(a.parent / "full.h5ad"), str(out), overwrite=True)
    got = sp.scan_slaf(out, "cells_x", layer="half").collect()
    half = adata.layers["half"]
    half.eliminate_zeros()
    for i in (0, 7, 299):
        row = half[i]
        assert got["gene_ids"][i].to_list() == row.indices.tolist()
        np.testing.assert_allclose(got["values"][i].to_numpy(), row.data)
    with pytest.raises(slaf.UnknownNameError, match="nope"):
        sp.scan_slaf(out, "cells_x", layer="nope")


# --- tokenizer expressions --------------------------------------------------------------------


def reference_geneformer(genes: list[int], counts: list[float], max_genes: int) -> list[int]:
    """Rank-value encoding written out: value / total, descending; ties by gene id."""
    total = float(sum(counts))
    order = sorted(range(len(genes)), key=lambda k: (-(counts[k] / total), genes[k]))
    return [genes[k] + 4 for k in order if counts[k] != 0][:max_genes]


@needs_fixtures
def test_geneformer_over_cells_x_matches_the_rule() -> None:
    # Every cell (500: more than the plugin tokenizes per core call).
    cells = sp.scan_slaf(PERTURB, "cells_x")
    got = cells.select("gene_ids", "values", tokens=sp.geneformer(max_genes=64)).collect()
    assert got.height > 256
    for genes, counts, tokens in got.iter_rows():
        assert tokens == reference_geneformer(genes, counts, 64)
    padded = cells.select(sp.geneformer(max_genes=64, pad=True)).collect().to_series()
    assert padded.list.len().unique().to_list() == [64]
    assert padded.list.head(10).to_list() == got["tokens"].list.head(10).to_list()


@needs_fixtures
def test_geneformer_v2_and_vocabulary_cap() -> None:
    got = (
        sp.scan_slaf(PERTURB, "cells_x")
        .head(5)
        .select(t=sp.geneformer(version="v2", max_genes=10, vocab_size=104))
        .collect()["t"]
    )
    for row in got.to_list():
        assert row[0] == 1 and row[-1] == 2 and len(row) <= 10  # <cls> ... <eos>
        assert all(4 <= t < 104 for t in row[1:-1])


@needs_fixtures
def test_coo_grouped_by_cell_gives_the_same_tokens() -> None:
    by_lists = (
        sp.scan_slaf(PERTURB, "cells_x")
        .select("cell_integer_id", t=sp.geneformer(max_genes=32))
        .sort("cell_integer_id")
        .collect()
    )
    by_group = (
        sp.scan_slaf(PERTURB, "expression")
        .sort("cell_integer_id", "gene_integer_id")
        .group_by("cell_integer_id", maintain_order=True)
        .agg(pl.col("gene_integer_id"), pl.col("value"))
        .select("cell_integer_id", t=sp.geneformer("gene_integer_id", "value", max_genes=32))
        .collect(engine="streaming")
        .sort("cell_integer_id")
    )
    nonempty = by_lists.filter(pl.col("t").list.len() > 0)
    assert_frame_equal(by_group, nonempty)


@needs_fixtures
def test_scgpt_struct_and_determinism() -> None:
    lf = sp.scan_slaf(PERTURB, "cells_x").head(30)
    expr = sp.scgpt(cell_ids="cell_integer_id", max_len=50, n_bins=11, seed=3)
    got = lf.select("gene_ids", tok=expr).collect()
    again = lf.select("gene_ids", tok=expr).collect(engine="streaming")
    assert_frame_equal(got, again)
    # Row by row the same, however the rows are split into calls.
    whole = sp.scan_slaf(PERTURB, "cells_x").select(tok=expr).collect()
    parts = pl.concat(
        sp.scan_slaf(PERTURB, "cells_x").slice(start, 70).select(tok=expr).collect()
        for start in range(0, whole.height, 70)
    )
    assert whole.height > 256
    assert_frame_equal(whole, parts)
    tok = got["tok"].struct.unnest()
    for genes, ids, values in zip(got["gene_ids"], tok["input_ids"], tok["values"], strict=True):
        ids, values = ids.to_list(), values.to_list()
        assert ids[0] == 1 and values[0] == 0.0  # <cls>
        assert len(ids) == min(50, len(genes) + 1) == len(values)
        assert set(ids[1:]) <= {g + 4 for g in genes.to_list()}
        assert all(0 <= v <= 10 for v in values[1:])
    padded = lf.select(t=sp.scgpt(max_len=50, pad=True)).collect()["t"].struct.unnest()
    assert padded["values"].list.len().unique().to_list() == [50]


@needs_fixtures
def test_normalize_total_and_log1p() -> None:
    got = (
        sp.scan_slaf(PERTURB, "cells_x")
        .head(10)
        .select("values", n=sp.log1p(sp.normalize_total("values", 1e4)))
        .collect()
    )
    for raw, norm in got.iter_rows():
        raw = np.asarray(raw, dtype=np.float64)
        np.testing.assert_allclose(norm, np.log1p(raw / raw.sum() * 1e4), rtol=1e-5)
    zero = pl.DataFrame({"v": [[0.0, 0.0]]}).select(sp.normalize_total("v"))
    assert zero["v"].to_list() == [[0.0, 0.0]]


# --- bad input --------------------------------------------------------------------------------


@needs_fixtures
def test_bad_input_raises_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(slaf.UnknownNameError, match='no table "cels"'):
        sp.scan_slaf(PBMC, "cels")
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        sp.scan_slaf(PBMC, "cells").select("nope").collect()
    with pytest.raises(slaf.InvalidArgumentError, match="cells_x"):
        sp.scan_slaf(PBMC, "cells", layer="counts")
    with pytest.raises(slaf.InvalidArgumentError, match="invalid filter"):
        sp.scan_slaf(PBMC, "cells_x", cell_filter="louvain ===").collect()
    strings = pl.DataFrame({"g": [["a", "b"]], "v": [[1.0, 2.0]]})
    with pytest.raises(pl.exceptions.PolarsError, match="gene_ids"):
        strings.select(sp.geneformer("g", "v"))
    ragged = pl.DataFrame({"g": [[1, 2]], "v": [[1.0]]})
    with pytest.raises(pl.exceptions.PolarsError, match="2 gene ids but 1 values"):
        ragged.select(sp.geneformer("g", "v"))
    beyond = pl.DataFrame({"g": [[1, 20]], "v": [[1.0, 2.0]]})
    with pytest.raises(pl.exceptions.PolarsError, match="out of range"):
        beyond.select(sp.geneformer("g", "v", n_genes=10))
    broken = tmp_path / "dict.json"
    broken.write_text("{not json")
    with pytest.raises(pl.exceptions.PolarsError, match=r"dict\.json"):
        beyond.select(sp.geneformer("g", "v", token_dictionary=broken, gene_names=["a"] * 30))
    medians = tmp_path / "medians.json"
    medians.write_text('{"A": 1.5}')
    with pytest.raises(pl.exceptions.PolarsError, match="pass gene_names"):
        beyond.select(sp.geneformer("g", "v", gene_medians=medians))
    with pytest.raises(slaf.InvalidArgumentError, match="n_genes"):
        sp.scgpt(include_zero_genes=True)
    nulls = pl.DataFrame({"g": [[1, 2], None], "v": [[1.0, 2.0], [1.0]]})
    assert nulls.select(sp.geneformer("g", "v"))["g"].to_list() == [[6, 5], None]
