"""Layers stored in the wide layers.lance table read back as anndata would hold them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

import slaf
from slaf import SLAFArray


@pytest.fixture(scope="module")
def with_layers(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("layers") / "layers.slaf"
    shutil.copytree(small_dataset, path)
    x = SLAFArray(path).get_submatrix(format="csr").toarray()
    rng = np.random.default_rng(3)
    spliced = np.where(rng.random(x.shape) < 0.5, x, 0).astype(np.float32)
    # Dense rows like slafdb's chunked writer: every (cell, gene), null where not stored.
    cells, genes = np.divmod(np.arange(x.size), x.shape[1])
    stored = x.ravel() != 0
    table = pa.table(
        {
            "cell_integer_id": pa.array(cells.astype(np.uint32)),
            "gene_integer_id": pa.array(genes.astype(np.uint16)),
            "spliced": pa.array(spliced.ravel(), mask=~stored),
            "log": pa.array(np.log1p(x).ravel()),
        }
    )
    lance.write_dataset(table, str(path / "layers.lance"), max_rows_per_file=40_000)
    config = json.loads((path / "config.json").read_text())
    config["tables"]["layers"] = "layers.lance"
    config["layers"] = {"available": ["spliced", "log"], "immutable": [], "mutable": []}
    (path / "config.json").write_text(json.dumps(config))
    return path, spliced, np.log1p(x).astype(np.float32)


def test_layers_read_like_anndata(with_layers) -> None:
    path, spliced, log = with_layers
    data = SLAFArray(path)
    assert data.layer_names == ["spliced", "log"]
    cells, genes = [400, 2, 77], [5, 0, 299]
    got = data.get_submatrix(cells, genes, layer="spliced", format="csr")
    np.testing.assert_array_equal(got.toarray(), spliced[np.ix_(cells, genes)])
    assert got.nnz == np.count_nonzero(spliced[np.ix_(cells, genes)])
    full = data.get_submatrix(layer="log", format="csr")
    np.testing.assert_allclose(full.toarray(), log)
    assert full.nnz == np.count_nonzero(log)


def test_unknown_layer(with_layers, small_dataset: Path) -> None:
    path, _, _ = with_layers
    with pytest.raises(slaf.UnknownNameError, match=r'no layer "nope".*available: spliced, log'):
        SLAFArray(path).get_submatrix([0], layer="nope", format="csr")
    with pytest.raises(KeyError, match="this dataset has no layers"):
        SLAFArray(small_dataset).get_submatrix([0], layer="spliced", format="csr")
