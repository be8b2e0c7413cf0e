"""Random selections read through ``get_submatrix`` and the lazy AnnData view equal scipy's
answer on the same matrix, with the cell cache on, off, and too small to hold a selection."""

from __future__ import annotations

import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from slaf import SLAFArray
from slaf.convert import convert
from slaf.integrations import read_slaf

N_CELLS, N_GENES = 240, 60


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, sp.csr_matrix]:
    """A generated dataset in several fragments (so ranges cross them) and its matrix."""
    rng = np.random.default_rng(7)
    x = sp.random(N_CELLS, N_GENES, density=0.15, format="csr", random_state=rng)
    x.data = np.round(x.data * 50 + 1).astype(np.float32)
    x.data[x.indptr[5] : x.indptr[6]] = 0  # a cell with no stored values
    x.eliminate_zeros()
    adata = ad.AnnData(X=x)
    adata.obs_names = [f"c{i}" for i in range(N_CELLS)]
    adata.var_names = [f"g{j}" for j in range(N_GENES)]
    root = tmp_path_factory.mktemp("random_access")
    adata.write_h5ad(root / "x.h5ad")
    out = convert(root / "x.h5ad", root / "x.slaf", rows_per_fragment=500)
    return out, x


def selector(n: int) -> st.SearchStrategy:
    """A selector of ``n`` items as users write them: ids (unsorted, repeated), a slice, a
    mask, one int, or everything."""
    ids = st.lists(st.integers(0, n - 1), min_size=0, max_size=2 * n // 3)
    return st.one_of(
        ids.map(lambda v: np.array(v, dtype=np.int64)),
        st.builds(slice, st.integers(0, n), st.integers(0, n)),
        st.lists(st.booleans(), min_size=n, max_size=n).map(np.array),
        st.integers(0, n - 1).map(lambda i: [i]),
        st.none(),
    )


def expected(x: sp.csr_matrix, cells: object, genes: object) -> np.ndarray:
    rows = x if cells is None else x[cells]
    return (rows if genes is None else rows[:, genes]).toarray()


@pytest.mark.parametrize("cache", ["default", "off", "tiny"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_selections_match_scipy(
    stored: tuple[str, sp.csr_matrix], cache: str, data: st.DataObject
) -> None:
    path, x = stored
    array = SLAFArray(path)
    array.cell_cache_bytes = {"default": array.cell_cache_bytes, "off": 0, "tiny": 2048}[cache]
    for _ in range(3):  # later selections overlap earlier ones: cached cells are reused
        cells = data.draw(selector(N_CELLS), label="cells")
        genes = data.draw(selector(N_GENES), label="genes")
        got = array.get_submatrix(cells, genes, format="csr")
        np.testing.assert_array_equal(got.toarray(), expected(x, cells, genes))
        again = array.get_submatrix(cells, genes, format="csr")
        np.testing.assert_array_equal(again.toarray(), got.toarray())


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_lazy_anndata_random_rows(stored: tuple[str, sp.csr_matrix], data: st.DataObject) -> None:
    path, x = stored
    cells = data.draw(selector(N_CELLS).filter(lambda s: s is not None), label="cells")
    np.testing.assert_array_equal(read_slaf(path)[cells].X.toarray(), expected(x, cells, None))


def test_cache_size_is_checked_and_kept(stored: tuple[str, sp.csr_matrix]) -> None:
    array = SLAFArray(stored[0], cell_cache_bytes=1 << 20)
    assert array.cell_cache_bytes == 1 << 20
    array.cell_cache_bytes = 0
    assert array.cell_cache_bytes == 0
    with pytest.raises(ValueError, match="0 \\(off\\) or positive"):
        array.cell_cache_bytes = -1
    with pytest.raises(TypeError, match="must be an int"):
        array.cell_cache_bytes = "1GB"  # type: ignore[assignment]
    with pytest.raises(OverflowError):
        array.cell_cache_bytes = 1 << 70
    assert array.cell_cache_bytes == 0  # a refused size leaves the cache as it was
    assert SLAFArray(stored[0]).cell_cache_bytes == 256 << 20


def test_local_reads_use_io_uring_unless_turned_off(stored: tuple[str, sp.csr_matrix]) -> None:
    """Both local read paths give the same matrix (io_uring where the kernel allows it)."""
    script = (
        "import sys; from slaf import SLAFArray, _native; "
        "m = SLAFArray(sys.argv[1]).get_submatrix([7, 3, 3, 200], format='csr'); "
        "print(_native.io_uring_reads(), m.nnz, float(m.data.sum()))"
    )
    rows = stored[1][[7, 3, 3, 200]]
    answer = f"{rows.nnz} {float(rows.data.sum())}"
    for setting in ("1", "0"):
        env = {**os.environ, "SLAF_IO_URING": setting}
        done = subprocess.run(
            [sys.executable, "-c", script, stored[0]], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        uring, result = done.stdout.strip().split(" ", 1)
        assert result == answer
        if setting == "0":
            assert uring == "False"
