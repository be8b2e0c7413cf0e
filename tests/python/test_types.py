"""Every id and value type found in the wild reads back the same matrix."""

from __future__ import annotations

import shutil
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from slaf import SLAFArray


@pytest.mark.parametrize(
    ("cell_type", "gene_type", "value_type"),
    [
        (pa.int32(), pa.int32(), pa.float32()),
        (pa.int64(), pa.int64(), pa.int64()),
        (pa.uint32(), pa.uint32(), pa.int32()),
        (pa.uint32(), pa.uint16(), pa.float64()),
        (pa.int32(), pa.int32(), pa.uint8()),
    ],
    ids=str,
)
def test_id_and_value_types(
    small_dataset: Path, tmp_path: Path, cell_type, gene_type, value_type
) -> None:
    path = tmp_path / "typed.slaf"
    shutil.copytree(small_dataset, path)
    original = lance.dataset(str(small_dataset / "expression.lance")).to_table()
    values = original.column("value").to_numpy()
    if pa.types.is_uint8(value_type):
        values = np.minimum(values, 255)
    typed = pa.table(
        {
            "cell_integer_id": original.column("cell_integer_id").cast(cell_type),
            "gene_integer_id": original.column("gene_integer_id").cast(gene_type),
            "value": pa.array(values).cast(value_type),
        }
    )
    lance.write_dataset(typed, str(path / "expression.lance"), mode="overwrite")
    expected = SLAFArray(small_dataset).get_submatrix([3, 100, 42], format="csr").toarray()
    if pa.types.is_uint8(value_type):
        expected = np.minimum(expected, 255)
    got = SLAFArray(path).get_submatrix([3, 100, 42], format="csr")
    wide = pa.types.is_int64(value_type) or pa.types.is_float64(value_type)
    assert got.dtype == (np.float64 if wide else np.float32)
    np.testing.assert_array_equal(got.toarray(), expected)


def test_extra_string_columns_in_expression_are_ignored(
    small_dataset: Path, tmp_path: Path
) -> None:
    # Old writers also stored cell_id / gene_id strings in the expression table.
    path = tmp_path / "old.slaf"
    shutil.copytree(small_dataset, path)
    table = lance.dataset(str(path / "expression.lance")).to_table()
    table = table.append_column("cell_id", table.column("cell_integer_id").cast(pa.string()))
    lance.write_dataset(table, str(path / "expression.lance"), mode="overwrite")
    expected = SLAFArray(small_dataset).get_submatrix(slice(0, 50), format="csr").toarray()
    np.testing.assert_array_equal(
        SLAFArray(path).get_submatrix(slice(0, 50), format="csr").toarray(), expected
    )


def test_threads_share_one_dataset(small_dataset: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = SLAFArray(small_dataset)
    full = data.get_submatrix(format="csr").toarray()
    picks = [np.random.default_rng(i).choice(500, size=40, replace=False) for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: data.get_submatrix(p, format="csr").toarray(), picks))
    for p, got in zip(picks, results, strict=True):
        np.testing.assert_array_equal(got, full[p])
