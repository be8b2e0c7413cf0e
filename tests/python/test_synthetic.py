"""Range reads across many fragments, checked against the raw Lance rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lance
import numpy as np
import scipy.sparse as sp

from slaf import SLAFArray


def _raw_matrix(path: Path) -> sp.csr_matrix:
    table = lance.dataset(str(path / "expression.lance")).to_table()
    config = json.loads((path / "config.json").read_text())
    return sp.csr_matrix(
        (
            table.column("value").to_numpy().astype(np.float32),
            (
                table.column("cell_integer_id").to_numpy(),
                table.column("gene_integer_id").to_numpy(),
            ),
        ),
        shape=tuple(config["array_shape"]),
    )


def test_fragment_boundaries_split_cells(small_dataset: Path) -> None:
    assert len(lance.dataset(str(small_dataset / "expression.lance")).get_fragments()) > 5
    data = SLAFArray(small_dataset)
    raw = _raw_matrix(small_dataset).toarray()
    rng = np.random.default_rng(1)
    cells = rng.choice(data.n_cells, size=120, replace=False)
    np.testing.assert_array_equal(data.get_submatrix(cells, format="csr").toarray(), raw[cells])
    np.testing.assert_array_equal(data.get_submatrix(format="csr").toarray(), raw)
    assert data._native.start_index_source() == "stored"


def test_deleted_rows_are_respected(small_dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "deleted.slaf"
    shutil.copytree(small_dataset, path)
    lance.dataset(str(path / "expression.lance")).delete("cell_integer_id = 3")
    data = SLAFArray(path)
    raw = _raw_matrix(path).toarray()
    assert not raw[3].any()
    # The stored index now points past the deleted rows; it must be re-derived.
    assert data._native.start_index_source() == "derived"
    np.testing.assert_array_equal(data.get_submatrix(range(10), format="csr").toarray(), raw[:10])
    np.testing.assert_array_equal(
        data.get_submatrix([499, 250], format="csr").toarray(), raw[[499, 250]]
    )


def test_missing_start_index_is_derived(small_dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "no_index.slaf"
    shutil.copytree(small_dataset, path)
    cells = lance.dataset(str(path / "cells.lance"))
    table = cells.to_table().drop(["cell_start_index"])
    lance.write_dataset(table, str(path / "cells.lance"), mode="overwrite")
    data = SLAFArray(path)
    assert data._native.start_index_source() == "derived"
    np.testing.assert_array_equal(
        data.get_submatrix([5, 400], format="csr").toarray(), _raw_matrix(path).toarray()[[5, 400]]
    )


def test_info_summarises(small_dataset: Path, capsys) -> None:
    SLAFArray(small_dataset).info()
    out = capsys.readouterr().out
    assert "shape: 500 cells × 300 genes" in out
    assert "format version: 0.5" in out
