"""Selectors pick the same cells and genes as anndata / numpy indexing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from slaf import SLAFArray

from conftest import source, stand_in

# Without the shared data, the generated stand-in: also 500 cells × 2,000 genes of counts.
NAME = stand_in("perturb500_chunked.slaf")


@pytest.fixture(scope="module")
def data(slafdb_fixtures_dir: Path) -> SLAFArray:
    return SLAFArray(slafdb_fixtures_dir / NAME)


@pytest.fixture(scope="module")
def dense() -> np.ndarray:
    return source(NAME).X.toarray()


def test_ids_in_any_order_with_repeats(data: SLAFArray, dense: np.ndarray) -> None:
    cells, genes = [499, 3, 3, 0, -1], [1999, 5, 0, 5]
    got = data.get_submatrix(cells, genes, format="csr")
    assert got.has_sorted_indices
    np.testing.assert_array_equal(got.toarray(), dense[np.ix_(cells, genes)])


def test_slices_masks_and_arrays(data: SLAFArray, dense: np.ndarray) -> None:
    np.testing.assert_array_equal(
        data.get_submatrix(slice(10, 200, 7), format="csr").toarray(), dense[10:200:7]
    )
    np.testing.assert_array_equal(
        data.get_submatrix(slice(None, None, -50), format="csr").toarray(), dense[::-50]
    )
    mask = np.zeros(2000, dtype=bool)
    mask[[3, 77, 1500]] = True
    np.testing.assert_array_equal(
        data.get_submatrix(range(5), mask, format="csr").toarray(), dense[:5][:, mask]
    )
    ids = np.array([42, 7], dtype=np.uint16)
    np.testing.assert_array_equal(data.get_submatrix(ids, format="csr").toarray(), dense[[42, 7]])
    np.testing.assert_array_equal(data.get_submatrix(7, format="csr").toarray(), dense[[7]])


def test_names(data: SLAFArray, dense: np.ndarray) -> None:
    adata = source(NAME)
    cells = adata.obs_names[[10, 2]].tolist()
    genes = adata.var_names[[100, 4, 9]]
    got = data.get_submatrix(cells, pl.Series(genes.tolist()), format="csr")
    np.testing.assert_array_equal(got.toarray(), dense[np.ix_([10, 2], [100, 4, 9])])
    np.testing.assert_array_equal(data.get_submatrix(cells[0], format="csr").toarray(), dense[[10]])


def test_empty_selection(data: SLAFArray) -> None:
    assert data.get_submatrix([], None, format="csr").shape == (0, 2000)
    assert data.get_submatrix(None, [], format="csr").nnz == 0


def test_cell_expression_long_rows(data: SLAFArray, dense: np.ndarray) -> None:
    adata = source(NAME)
    frame = data.get_cell_expression([adata.obs_names[5], adata.obs_names[1]])
    assert frame.columns == ["cell_integer_id", "gene_integer_id", "cell_id", "gene_id", "value"]
    assert frame["cell_integer_id"].unique(maintain_order=True).to_list() == [5, 1]
    for cell in (5, 1):
        rows = frame.filter(pl.col("cell_integer_id") == cell)
        genes = rows["gene_integer_id"].to_numpy()
        np.testing.assert_array_equal(genes, np.flatnonzero(dense[cell]))
        np.testing.assert_array_equal(rows["value"].to_numpy(), dense[cell, genes])
        assert rows["gene_id"].to_list() == adata.var_names[genes].tolist()


def test_gene_expression_long_rows(data: SLAFArray, dense: np.ndarray) -> None:
    frame = data.get_gene_expression([12])
    np.testing.assert_array_equal(frame["cell_integer_id"].to_numpy(), np.flatnonzero(dense[:, 12]))
    np.testing.assert_array_equal(frame["value"].to_numpy(), dense[dense[:, 12] != 0, 12])
