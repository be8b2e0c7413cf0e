"""Bad inputs raise clear exceptions of the expected types."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import slaf
from slaf import SLAFArray

from conftest import FIXTURES, needs_fixtures, stand_in

# Without the shared data, the generated stand-in: also 1,107 cells × 507 genes, from MTX.
GOOD = FIXTURES / stand_in("pbmc10x_v3_mtx_chunked.slaf")


def _copy(tmp_path: Path) -> Path:
    out = tmp_path / "copy.slaf"
    shutil.copytree(GOOD, out)
    return out


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.slaf"
    with pytest.raises(slaf.DatasetNotFoundError, match="does not exist") as info:
        SLAFArray(missing)
    assert isinstance(info.value, FileNotFoundError)
    assert str(missing) in str(info.value)


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(slaf.NotASLAFDatasetError, match=r"has no config\.json"):
        SLAFArray(tmp_path)
    a_file = tmp_path / "data.h5ad"
    a_file.write_text("x")
    with pytest.raises(slaf.NotASLAFDatasetError, match="is a file, not a directory"):
        SLAFArray(a_file)


@needs_fixtures
def test_missing_table(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    shutil.rmtree(path / "genes.lance")
    with pytest.raises(slaf.MissingTableError, match=r"table 'genes' .* is missing"):
        SLAFArray(path)


@needs_fixtures
def test_table_named_in_config_missing(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["tables"]["cells"] = "data/train/cells.lance"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(slaf.MissingTableError, match=r"data/train/cells\.lance"):
        SLAFArray(path)


@needs_fixtures
def test_tables_in_sub_folders(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    (path / "data" / "train").mkdir(parents=True)
    shutil.move(path / "cells.lance", path / "data" / "train" / "cells.lance")
    config = json.loads((path / "config.json").read_text())
    config["tables"]["cells"] = "data/train/cells.lance"
    (path / "config.json").write_text(json.dumps(config))
    assert SLAFArray(path).obs.height == 1107


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        (
            '{"format_version": "7.0", "array_shape": [1107, 507]}',
            'format_version "7.0" is not supported',
        ),
        ('{"format_version": "0.5", "tables": {}}', "array_shape is missing"),
    ],
)
@needs_fixtures
def test_corrupt_config(tmp_path: Path, text: str, message: str) -> None:
    path = _copy(tmp_path)
    (path / "config.json").write_text(text)
    with pytest.raises(slaf.InvalidConfigError, match=message) as info:
        SLAFArray(path)
    assert isinstance(info.value, ValueError)
    assert "config.json" in str(info.value)


@needs_fixtures
def test_shape_disagreeing_with_tables(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["array_shape"] = [2000, 507]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(slaf.InvalidDatasetError, match="table 'cells' has 1107 rows"):
        SLAFArray(path)


@needs_fixtures
def test_out_of_range_selectors() -> None:
    data = SLAFArray(GOOD)
    with pytest.raises(
        slaf.SelectionIndexError, match="cell index 1107 is out of range for 1107 cells"
    ) as info:
        data.get_submatrix([0, 1107], format="csr")
    assert isinstance(info.value, IndexError)
    with pytest.raises(IndexError, match="gene index -508 is out of range"):
        data.get_submatrix(None, -508, format="csr")


@needs_fixtures
def test_unknown_names() -> None:
    data = SLAFArray(GOOD)
    with pytest.raises(slaf.UnknownNameError, match='unknown gene name: "NOT_A_GENE"') as info:
        data.get_submatrix(None, [data.var["gene_id"][0], "NOT_A_GENE"], format="csr")
    assert isinstance(info.value, KeyError)
    with pytest.raises(KeyError, match="unknown cell names"):
        data.get_cell_expression(["x", "y"])
    with pytest.raises(KeyError, match="no obsm key 'X_umap'"):
        data.obsm["X_umap"]


@needs_fixtures
def test_malformed_selectors() -> None:
    data = SLAFArray(GOOD)
    with pytest.raises(
        slaf.InvalidArgumentError, match="mask has length 3 but there are 1107 cells"
    ):
        data.get_submatrix(np.array([True, False, True]), format="csr")
    with pytest.raises(slaf.InvalidArgumentError, match="step cannot be zero"):
        data.get_submatrix(slice(0, 10, 0), format="csr")
    with pytest.raises(TypeError, match=r"selector value 0\.5 of type float"):
        data.get_submatrix([0.5, 1.5], format="csr")
    with pytest.raises(TypeError, match="dtype float64"):
        data.get_submatrix(np.array([0.5, 1.5]), format="csr")
    with pytest.raises(TypeError, match="single boolean"):
        data.get_submatrix(True, format="csr")
    with pytest.raises(TypeError, match=r"unsupported cell selector <object .*> of type object"):
        data.get_submatrix(object(), format="csr")


def test_repeated_names_select_by_id_only(small_dataset: Path, tmp_path: Path) -> None:
    import lance
    import pyarrow as pa

    path = tmp_path / "dups.slaf"
    shutil.copytree(small_dataset, path)
    cells = lance.dataset(str(path / "cells.lance")).to_table()
    names = cells.column("cell_id").to_pylist()
    names[1] = names[0]  # anndata allows non-unique obs_names
    cells = cells.set_column(cells.schema.get_field_index("cell_id"), "cell_id", pa.array(names))
    lance.write_dataset(cells, str(path / "cells.lance"), mode="overwrite")
    data = SLAFArray(path)
    with pytest.raises(slaf.InvalidArgumentError, match="is shared by several cells"):
        data.get_submatrix(names[0], format="csr")
    expected = data.get_submatrix([2], format="csr").toarray()
    np.testing.assert_array_equal(data.get_submatrix(names[2], format="csr").toarray(), expected)
