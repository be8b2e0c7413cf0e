"""``slaf.ml.SLAFDataLoader``: coverage, order, sharding, tokens, threads and errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import lance
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

import slaf.polars as slpl
from slaf import SLAFArray, SLAFError
from slaf.ml import SLAFDataLoader
from slaf.polars import scan_slaf

from conftest import REPO, stand_in

ROWS_PER_FRAGMENT = 997


@pytest.fixture(scope="module")
def split_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 cells over ~18 small fragments, so that many cells straddle two fragments."""
    sys.path.insert(0, str(REPO / "benches"))
    from synthetic import generate

    out = tmp_path_factory.mktemp("loader") / "split.slaf"
    generate(
        out, n_cells=600, n_genes=200, nnz_per_cell=30, seed=3, rows_per_fragment=ROWS_PER_FRAGMENT
    )
    return out


def reference_x(path: Path) -> sp.csr_matrix:
    """X read straight from the Lance expression table (pylance), independent of SLAF."""
    table = lance.dataset(str(path / "expression.lance")).to_table()
    shape = SLAFArray(path).shape
    coo = sp.coo_matrix(
        (
            table["value"].to_numpy().astype(np.float32),
            (table["cell_integer_id"].to_numpy(), table["gene_integer_id"].to_numpy()),
        ),
        shape=shape,
    )
    return coo.tocsr()


def loader(path: Path, **kwargs) -> SLAFDataLoader:
    kwargs.setdefault("verbose", False)
    return SLAFDataLoader(SLAFArray(path), **kwargs)


def cell_order(dl: SLAFDataLoader) -> list[int]:
    return [int(c) for batch in dl for c in batch["cell_ids"]]


def loader_threads() -> int:
    """Live OS threads of this process started by the loader (named in Rust)."""
    names = [p.read_text().strip() for p in Path("/proc/self/task").glob("*/comm")]
    return sum(name.startswith("slaf-loader") for name in names)


@pytest.fixture(autouse=True)
def no_thread_outlives_a_test() -> Iterator[None]:
    yield
    assert loader_threads() == 0


def test_cells_are_split_across_fragments(split_dataset: Path) -> None:
    # The premise of the coverage tests: some cells' rows span two fragments.
    cells = lance.dataset(str(split_dataset / "expression.lance")).to_table(
        columns=["cell_integer_id"]
    )
    ids = cells["cell_integer_id"].to_numpy()
    boundaries = np.arange(ROWS_PER_FRAGMENT, len(ids), ROWS_PER_FRAGMENT)
    assert (ids[boundaries - 1] == ids[boundaries]).sum() >= 5


@pytest.mark.parametrize("dense", [False, True])
def test_raw_epoch_serves_every_cell_once_whole(split_dataset: Path, dense: bool) -> None:
    x = reference_x(split_dataset)
    dl = loader(split_dataset, raw_mode=True, batch_size=32, dense=dense)
    seen: list[int] = []
    for batch in dl:
        ids = batch["cell_ids"].numpy()
        got = batch["x"].to_dense().numpy() if not dense else batch["x"].numpy()
        np.testing.assert_array_equal(got, x[ids].toarray())
        seen.extend(ids.tolist())
    assert sorted(seen) == list(range(x.shape[0]))
    assert len(dl) == -(-x.shape[0] // 32)


def test_numpy_batches_without_torch_types(split_dataset: Path) -> None:
    x = reference_x(split_dataset)
    raw = next(iter(loader(split_dataset, raw_mode=True, return_tensors="np")))
    assert isinstance(raw["x"], sp.csr_matrix)
    np.testing.assert_array_equal(raw["x"].toarray(), x[raw["cell_ids"]].toarray())
    tok = next(iter(loader(split_dataset, return_tensors="np", max_genes=64)))
    assert tok["input_ids"].dtype == np.int64 and tok["input_ids"].shape == (32, 64)
    assert tok["attention_mask"].dtype == np.bool_
    assert tok["cell_ids"].dtype == np.int64


def test_tokenized_batches_have_slafdb_keys_and_types(split_dataset: Path) -> None:
    dl = loader(split_dataset, batch_size=16, max_genes=32, n_epochs=2)
    batches = list(dl)
    assert len(batches) == len(dl) == 2 * -(-600 // 16)
    first = batches[0]
    assert set(first) == {"input_ids", "attention_mask", "cell_ids", "epoch"}
    assert first["input_ids"].dtype == torch.long and first["input_ids"].shape == (16, 32)
    assert first["attention_mask"].dtype == torch.bool
    assert first["cell_ids"].dtype == torch.long
    for epoch in (0, 1):
        ids = [int(c) for b in batches if b["epoch"] == epoch for c in b["cell_ids"]]
        assert sorted(ids) == list(range(600))
    scgpt = next(iter(loader(split_dataset, tokenizer_type="scgpt", max_genes=24)))
    assert set(scgpt) == {"input_ids", "attention_mask", "cell_ids", "values"}
    assert scgpt["values"].shape == scgpt["input_ids"].shape


def test_same_seed_same_batches_new_order_each_epoch(split_dataset: Path) -> None:
    a = loader(split_dataset, seed=5, max_genes=16)
    b = loader(split_dataset, seed=5, max_genes=16)
    batches_a, batches_b = list(a), list(b)
    for x, y in zip(batches_a, batches_b, strict=True):
        assert torch.equal(x["input_ids"], y["input_ids"])
        assert torch.equal(x["cell_ids"], y["cell_ids"])
    order = cell_order(a)
    assert order == [int(c) for batch in batches_a for c in batch["cell_ids"]]
    a.set_epoch(1)
    assert sorted(cell_order(a)) == sorted(order) and cell_order(a) != order
    assert cell_order(loader(split_dataset, seed=6, max_genes=16)) != order
    assert cell_order(loader(split_dataset, shuffle=False)) == list(range(600))
    # Many windows: the order does not depend on how many threads prepare them.
    orders = [
        cell_order(loader(split_dataset, seed=5, prefetch_batch_size=1000, num_threads=t))
        for t in (1, 3)
    ]
    assert orders[0] == orders[1] and sorted(orders[0]) == list(range(600))


@pytest.mark.parametrize("prefetch_rows", [1000, 4194304])
def test_shuffle_mixes_fragments(split_dataset: Path, prefetch_rows: int) -> None:
    ids = (
        lance.dataset(str(split_dataset / "expression.lance"))
        .to_table(columns=["cell_integer_id"])["cell_integer_id"]
        .to_numpy()
    )
    # The fragment holding each cell's first row.
    first_row = np.searchsorted(ids, np.arange(600))
    fragment = first_row // ROWS_PER_FRAGMENT
    dl = loader(split_dataset, raw_mode=True, batch_size=32, prefetch_batch_size=prefetch_rows)
    fragments_per_batch = [len(set(fragment[b["cell_ids"].numpy()])) for b in dl]
    assert np.mean(fragments_per_batch) >= 8, fragments_per_batch
    order = np.array(cell_order(dl))
    # Uniform random order: E|Δ| = n / 3 = 200; sequential reading gives 1.
    assert np.abs(np.diff(order)).mean() > 100


def test_ranks_get_disjoint_complete_balanced_shares(split_dataset: Path) -> None:
    shares = [cell_order(loader(split_dataset, rank=r, world_size=3, seed=1)) for r in range(3)]
    assert sorted(len(s) for s in shares) == [200, 200, 200]
    assert sorted(c for s in shares for c in s) == list(range(600))
    dropped = [loader(split_dataset, rank=r, world_size=7, drop_last=True) for r in range(7)]
    assert {len(d) for d in dropped} == {2}  # 600 // 7 = 85 cells = 2 whole batches of 32
    assert all(len(list(d)) == 2 for d in dropped)


def test_cell_subsets_and_layer(split_dataset: Path) -> None:
    assert sorted(cell_order(loader(split_dataset, cells=[5, 3, 99]))) == [3, 5, 99]
    mask = np.zeros(600, dtype=bool)
    mask[::7] = True
    assert sorted(cell_order(loader(split_dataset, cells=mask))) == list(range(0, 600, 7))
    obs = SLAFArray(split_dataset).obs
    column = next(c for c in obs.columns if obs[c].dtype == pl.Utf8 and obs[c].n_unique() < 20)
    value = obs[column][0]
    expected = np.flatnonzero((obs[column] == value).to_numpy()).tolist()
    filtered = cell_order(loader(split_dataset, cell_filter=f"{column} = '{value}'"))
    assert sorted(filtered) == expected
    with pytest.raises(SLAFError, match="nope"):
        loader(split_dataset, layer="nope")


def geneformer_reference(path: Path, max_genes: int) -> dict[int, list[int]]:
    cells = scan_slaf(path, "cells_x").collect()
    tokens = cells.select(
        "cell_integer_id",
        slpl.geneformer(max_genes=max_genes, vocab_size=150, n_genes=200, pad=True).alias("t"),
    )
    return dict(zip(tokens["cell_integer_id"].to_list(), tokens["t"].to_list(), strict=True))


def test_tokens_equal_the_polars_tokenizer(split_dataset: Path) -> None:
    expected = geneformer_reference(split_dataset, 48)
    dl = loader(split_dataset, max_genes=48, vocab_size=150, batch_size=50)
    n = 0
    for batch in dl:
        for cell, ids, mask in zip(
            batch["cell_ids"], batch["input_ids"], batch["attention_mask"], strict=True
        ):
            assert ids.tolist() == expected[int(cell)]
            assert mask.tolist() == [t != 0 for t in expected[int(cell)]]
            n += 1
    assert n == 600

    cells = scan_slaf(split_dataset, "cells_x").collect()
    ref = cells.select(
        "cell_integer_id",
        slpl.scgpt(
            cell_ids="cell_integer_id", max_len=20, n_bins=7, seed=3, n_genes=200, pad=True
        ).alias("t"),
    ).unnest("t")
    by_cell = {c: i for i, c in enumerate(ref["cell_integer_id"].to_list())}
    dl = loader(
        split_dataset,
        tokenizer_type="scgpt",
        max_genes=20,
        n_expression_bins=7,
        vocab_size=204,
        tokenizer_options={"tokenizer_seed": 3},
    )
    for batch in dl:
        for cell, ids, values in zip(
            batch["cell_ids"], batch["input_ids"], batch["values"], strict=True
        ):
            row = by_cell[int(cell)]
            assert ids.tolist() == ref["input_ids"][row].to_list()
            np.testing.assert_array_equal(values.numpy(), np.array(ref["values"][row].to_list()))


def test_early_break_and_delete_leave_no_thread(split_dataset: Path) -> None:
    dl = loader(split_dataset, max_genes=16, batch_size=8, prefetch_batch_size=1000)
    assert loader_threads() == 0
    for i, _ in enumerate(dl):
        if i == 0:
            assert loader_threads() > 0
        if i == 3:
            break
    assert loader_threads() == 0
    it = iter(dl)
    next(it)
    assert loader_threads() > 0
    del it
    assert loader_threads() == 0


def test_a_prefetcher_error_reaches_the_loop(split_dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.slaf"
    shutil.copytree(split_dataset, copy)
    dl = loader(copy, raw_mode=True)
    for data in (copy / "expression.lance" / "data").iterdir():
        data.unlink()
    with pytest.raises(SLAFError, match="expression"):
        for _ in dl:
            pass
    assert loader_threads() == 0


def test_slafdb_tuning_knobs_warn_once(split_dataset: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader(split_dataset, n_scanners=4, max_queue_size=10)
        loader(split_dataset, n_scanners=4)
    messages = [str(w.message) for w in caught]
    assert sum("n_scanners" in m for m in messages) == 1
    assert sum("max_queue_size" in m for m in messages) == 1
    with pytest.raises(ValueError, match="tokenizer_type"):
        loader(split_dataset, tokenizer_type="bert")


def test_usable_as_an_iterable_dataset(split_dataset: Path) -> None:
    dl = loader(split_dataset, max_genes=16, seed=9)
    assert isinstance(dl, torch.utils.data.IterableDataset)
    via_torch = [b["cell_ids"] for b in torch.utils.data.DataLoader(dl, batch_size=None)]
    assert torch.equal(torch.cat(via_torch), torch.tensor(cell_order(dl)))


@pytest.mark.parametrize(
    "name", [stand_in("perturb500_chunked.slaf"), stand_in("pbmc68k_reduced_inmemory.slaf")]
)
def test_slafdb_written_datasets(name: str, slafdb_fixtures_dir: Path) -> None:
    path = slafdb_fixtures_dir / name
    x = SLAFArray(path).get_submatrix(format="csr")
    seen: list[int] = []
    for batch in loader(path, raw_mode=True, batch_size=64):
        ids = batch["cell_ids"].numpy()
        np.testing.assert_array_equal(batch["x"].to_dense().numpy(), x[ids].toarray())
        seen.extend(ids.tolist())
    assert sorted(seen) == list(range(x.shape[0]))


def test_torchrun_shards_are_disjoint_complete_balanced(
    split_dataset: Path, tmp_path: Path
) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    script = Path(__file__).parent / "loader_ddp.py"
    subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(split_dataset),
            str(tmp_path),
        ],
        check=True,
        timeout=300,
    )
    shares = [np.load(tmp_path / f"rank{r}.npy").tolist() for r in range(2)]
    assert [len(s) for s in shares] == [300, 300]
    assert sorted(shares[0] + shares[1]) == list(range(600))
