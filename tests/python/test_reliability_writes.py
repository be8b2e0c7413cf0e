"""Reliability of writes (issue 17): appends are transactions that commit in place and never
lose each other, readers always see a config that matches the tables, ``--overwrite`` replaces
only a SLAF dataset, broken MTX files and non-finite values are refused, and leftovers of
killed writes are cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import lance
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp

from slaf import SLAFArray, cli
from slaf.convert import append, convert
from slaf.errors import InvalidArgumentError, SLAFError

from conftest import REPO

SLAF_CLI = [sys.executable, "-m", "slaf.cli"]
N_GENES = 12
#: A process id no process has (above Linux's pid_max).
DEAD_PID = 4294967295


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*SLAF_CLI, *args], capture_output=True, text=True, cwd=cwd)


def _h5ad(path: Path, n_cells: int, prefix: str, seed: int, x: np.ndarray | None = None) -> Path:
    """A small h5ad of integer counts whose cells are named ``{prefix}{i}``."""
    rng = np.random.default_rng(seed)
    if x is None:
        x = rng.integers(0, 4, (n_cells, N_GENES)).astype(np.float32)
    obs = pd.DataFrame(index=[f"{prefix}{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(N_GENES)])
    ad.AnnData(sp.csr_matrix(x), obs=obs, var=var).write_h5ad(path)
    return path


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _consistent(path: Path) -> str | None:
    """Why the dataset at ``path`` reads inconsistently, or ``None``."""
    data = SLAFArray(path)
    config = data.config
    if len(data.obs) != data.n_cells or data.n_cells != config["n_cells"]:
        return f"obs has {len(data.obs)} rows, config says {config['n_cells']}"
    if data.nnz != config["metadata"]["expression_count"]:
        return f"{data.nnz} values, config says {config['metadata']['expression_count']}"
    if data.get_submatrix(format="csr").nnz != data.nnz:
        return "the matrix disagrees with the table"
    return None


# ---------------------------------------------------------------------------------------------
# Appends are transactions


def test_append_commits_in_place_and_records_table_versions(tmp_path: Path) -> None:
    # Without the gene-major table (which adds versions of its own), to count versions exactly.
    base = convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf", gene_index=False)
    config = json.loads((Path(base) / "config.json").read_text())
    assert config["table_versions"] == {"cells": 1, "expression": 1, "genes": 1}
    reader = SLAFArray(base)
    inode = os.stat(base).st_ino
    append(_h5ad(tmp_path / "b.h5ad", 3, "b", 2), base, gene_index=False)
    # In place (same folder), new versions of the tables that changed, recorded in config.
    assert os.stat(base).st_ino == inode
    config = json.loads((Path(base) / "config.json").read_text())
    assert config["table_versions"] == {"cells": 2, "expression": 2, "genes": 1}
    assert SLAFArray(base).n_cells == 8
    assert reader.n_cells == 5 and len(reader.obs) == 5
    assert _hidden(tmp_path) == []


def test_readers_open_the_versions_config_describes(tmp_path: Path) -> None:
    """A table version committed without its config (a killed append) stays invisible, and
    the next append rolls it back instead of building on it."""
    base = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    cells = lance.dataset(base / "cells.lance")
    lance.write_dataset(cells.to_table(), base / "cells.lance", mode="append")
    assert lance.dataset(base / "cells.lance").count_rows() == 10
    assert _consistent(base) is None and SLAFArray(base).n_cells == 5
    with pytest.warns(UserWarning, match="rolled back"):
        append(_h5ad(tmp_path / "b.h5ad", 3, "b", 2), base)
    data = SLAFArray(base)
    assert data.n_cells == 8 and _consistent(base) is None
    assert list(data.obs["cell_id"]) == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(3)]


def _data_files(dataset: Path) -> set[str]:
    return {f"{t.name}/{f.name}" for t in dataset.glob("*.lance") for f in (t / "data").iterdir()}


def test_a_failed_append_removes_its_data_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = sys.modules["slaf.convert"]
    base = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    before = _data_files(base)
    rows = module._CsrRows.rows
    calls = {"n": 0}

    def failing(self: object, start: int, stop: int) -> object:
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("disk on fire")
        return rows(self, start, stop)

    # Over a million values before the failure: the writer has sent rows to a data file.
    x = np.random.default_rng(2).integers(1, 4, (100_000, N_GENES)).astype(np.float32)
    big = _h5ad(tmp_path / "b.h5ad", 100_000, "b", 2, x=x)
    monkeypatch.setattr(module._CsrRows, "rows", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        append(big, base, chunk_size=10_000)
    assert calls["n"] == 10
    assert _data_files(base) == before and SLAFArray(base).n_cells == 5


def test_data_files_a_killed_append_left_are_removed_by_the_next(tmp_path: Path) -> None:
    base = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    data = base / "expression.lance" / "data"
    stray = data / "0000deadbeef.lance"
    stray.write_bytes(next(data.iterdir()).read_bytes())
    assert SLAFArray(base).nnz == SLAFArray(base).config["metadata"]["expression_count"]
    with pytest.warns(UserWarning, match=r"removed 1 data file"):
        append(_h5ad(tmp_path / "b.h5ad", 3, "b", 2), base)
    assert not stray.exists() and _consistent(base) is None


def test_datasets_without_recorded_versions_still_open_and_append(tmp_path: Path) -> None:
    base = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    config = json.loads((base / "config.json").read_text())
    del config["table_versions"]
    (base / "config.json").write_text(json.dumps(config))
    assert SLAFArray(base).n_cells == 5
    append(_h5ad(tmp_path / "b.h5ad", 3, "b", 2), base)
    assert SLAFArray(base).n_cells == 8
    assert "table_versions" in json.loads((base / "config.json").read_text())


_READER = """
import json, os, sys, time
sys.path.insert(0, sys.argv[3])
from test_reliability_writes import _consistent
path, stop = sys.argv[1], sys.argv[2]
reads, bad = 0, []
while not os.path.exists(stop) or reads < 3:
    problem = _consistent(path)
    if problem:
        bad.append(problem)
    reads += 1
print(json.dumps({"reads": reads, "bad": bad}))
"""


def test_concurrent_appends_all_land_once_and_readers_stay_consistent(tmp_path: Path) -> None:
    base = Path(convert(_h5ad(tmp_path / "base.h5ad", 10, "base", 0), tmp_path / "ds.slaf"))
    n_appends, sizes = 4, [7, 5, 9, 6]
    inputs = [_h5ad(tmp_path / f"in{k}.h5ad", sizes[k], f"in{k}_", k + 1) for k in range(4)]
    stop = tmp_path / "stop"
    here = str(Path(__file__).parent)
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _READER, str(base), str(stop), here],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(2)
    ]
    writers = [
        subprocess.Popen(
            [*SLAF_CLI, "append", "--quiet", str(p), str(base)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for p in inputs
    ]
    results = [(w.wait(timeout=600), *w.communicate()) for w in writers]
    stop.touch()
    seen = [r.communicate(timeout=600) for r in readers]
    landed = [k for k, (rc, out, _) in enumerate(results) if rc == 0]
    for rc, out, err in results:
        # Each append lands or says it failed: nothing in between.
        assert (rc == 0 and "appended" in out) or (rc != 0 and "error" in err), (rc, out, err)
    assert len(landed) == n_appends, results
    data = SLAFArray(base)
    names = list(data.obs["cell_id"])
    assert data.n_cells == 10 + sum(sizes[k] for k in landed)
    assert len(set(names)) == len(names)
    for k in landed:
        assert sum(n.startswith(f"in{k}_") for n in names) == sizes[k]
    assert _consistent(base) is None
    for out, err in seen:
        report = json.loads(out)
        assert report["reads"] >= 3 and report["bad"] == [], (report, err)
    assert _hidden(tmp_path) == []


def test_append_through_a_symlink_updates_the_real_dataset(tmp_path: Path) -> None:
    real = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "real.slaf"))
    link = tmp_path / "link.slaf"
    link.symlink_to(real, target_is_directory=True)
    done = _cli("append", "--quiet", str(_h5ad(tmp_path / "b.h5ad", 3, "b", 2)), str(link))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink()
    assert SLAFArray(real).n_cells == 8 and SLAFArray(link).n_cells == 8
    assert _hidden(tmp_path) == []


def test_ctrl_c_after_the_commit_reports_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = sys.modules["slaf.convert"]
    base = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    b = _h5ad(tmp_path / "b.h5ad", 3, "b", 2)

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C right after the append committed: it happened, and the exit status says so.
    monkeypatch.setattr(module._Progress, "close", interrupted)
    assert cli.main(["append", "--quiet", str(b), str(base)]) == 0
    out, err = capsys.readouterr()
    assert "appended" in out and "after the write had completed" in err
    assert SLAFArray(base).n_cells == 8
    # Ctrl-C before the commit: nothing was written.
    monkeypatch.setattr(module._CsrRows, "rows", interrupted)
    assert cli.main(["append", "--quiet", str(b), str(base)]) == 130
    assert "nothing was written" in capsys.readouterr().err
    assert SLAFArray(base).n_cells == 8


# ---------------------------------------------------------------------------------------------
# --overwrite replaces only a SLAF dataset


def test_overwrite_replaces_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds.slaf"
    convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), out)
    done = _cli("convert", "--overwrite", str(_h5ad(tmp_path / "b.h5ad", 3, "b", 2)), str(out))
    assert done.returncode == 0, done.stderr
    assert SLAFArray(out).n_cells == 3
    assert _hidden(tmp_path) == []


def _refused(done: subprocess.CompletedProcess, why: str) -> None:
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slaf: error: refusing to overwrite"), lines
    assert why in lines[0], lines[0]


def test_overwrite_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    done = _cli("convert", "--overwrite", str(_h5ad(tmp_path / "a.h5ad", 5, "a", 1)), str(folder))
    _refused(done, "no config.json")
    assert (folder / "keep.txt").read_text() == "precious"


def test_overwrite_refuses_a_dataset_holding_other_files(tmp_path: Path) -> None:
    out = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    (out / "notes.txt").write_text("mine")
    done = _cli("convert", "--overwrite", str(_h5ad(tmp_path / "b.h5ad", 3, "b", 2)), str(out))
    _refused(done, "notes.txt")
    assert SLAFArray(out).n_cells == 5 and (out / "notes.txt").exists()


def test_overwrite_refuses_the_current_directory(tmp_path: Path) -> None:
    out = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    b = _h5ad(tmp_path / "b.h5ad", 3, "b", 2)
    _refused(_cli("convert", "--overwrite", str(b), ".", cwd=out), "current directory")
    assert SLAFArray(out).n_cells == 5
    # The folder holding the input, as the current directory.
    _refused(_cli("convert", "--overwrite", "b.h5ad", ".", cwd=tmp_path), "b.h5ad")
    assert b.exists()


def test_overwrite_refuses_a_path_holding_the_input(tmp_path: Path) -> None:
    data = tmp_path / "box" / "data"
    data.mkdir(parents=True)
    a = _h5ad(data / "in.h5ad", 5, "a", 1)
    _refused(_cli("convert", "--overwrite", str(a), str(tmp_path / "box")), "holds the input")
    _refused(_cli("convert", "--overwrite", str(a), str(a)), "is the input")
    assert a.exists() and ad.read_h5ad(a).n_obs == 5
    with pytest.raises(InvalidArgumentError, match="holds the input"):
        convert(a, tmp_path / "box", overwrite=True)


# ---------------------------------------------------------------------------------------------
# Input validation


def _mtx_folder(folder: Path, lines: list[str], header: str) -> Path:
    folder.mkdir()
    body = "%%MatrixMarket matrix coordinate integer general\n" + header + "".join(lines)
    (folder / "matrix.mtx").write_text(body)
    (folder / "features.tsv").write_text(
        "".join(f"ID{j}\tG{j}\tGene Expression\n" for j in range(N_GENES))
    )
    (folder / "barcodes.tsv").write_text("".join(f"c{i}\n" for i in range(6)))
    return folder


def _entries() -> list[str]:
    rng = np.random.default_rng(5)
    pairs = sorted({(int(g), int(c)) for g, c in rng.integers(0, (N_GENES, 6), (40, 2))})
    return [f"{g + 1} {c + 1} {k + 1}\n" for k, (g, c) in enumerate(pairs)]


def test_a_complete_mtx_converts(tmp_path: Path) -> None:
    lines = _entries()
    folder = _mtx_folder(tmp_path / "mtx", lines, f"{N_GENES} 6 {len(lines)}\n")
    data = SLAFArray(convert(folder, tmp_path / "ok.slaf"))
    assert data.nnz == len(lines)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("half", "promises"),
        ("cut_mid_line", "middle of a line"),
        ("cut_mid_entry", "malformed"),
        ("promises_more", "promises"),
        ("gene_out_of_range", "gene index"),
        ("garbage", "malformed"),
    ],
)
def test_broken_mtx_files_are_refused(tmp_path: Path, case: str, message: str) -> None:
    lines = _entries()
    header = f"{N_GENES} 6 {len(lines)}\n"
    if case == "half":
        lines = lines[: len(lines) // 2]
    elif case == "cut_mid_line":
        lines[-1] = lines[-1][:-2]
    elif case == "cut_mid_entry":
        lines = [*lines[:10], lines[10].rsplit(" ", 1)[0] + "\n"]
        header = f"{N_GENES} 6 11\n"
    elif case == "promises_more":
        header = f"{N_GENES} 6 {len(lines) + 5}\n"
    elif case == "gene_out_of_range":
        lines[3] = f"{N_GENES + 1} 1 1\n"
    elif case == "garbage":
        lines[3] = "1 x 2\n"
    folder = _mtx_folder(tmp_path / "mtx", lines, header)
    out = tmp_path / "out.slaf"
    done = _cli("convert", "--quiet", str(folder), str(out))
    assert done.returncode == 1, done
    assert message in done.stderr and "matrix.mtx" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists() and _hidden(tmp_path) == []


@pytest.mark.parametrize(
    ("bad", "what"),
    [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite"), (1e40, "float32")],
)
def test_non_finite_values_are_refused_unless_allowed(
    tmp_path: Path, bad: float, what: str
) -> None:
    x = np.ones((4, N_GENES), dtype=np.float64)
    x[2, 3] = bad
    path = _h5ad(tmp_path / "x.h5ad", 4, "c", 1, x=x)
    with pytest.raises(InvalidArgumentError, match=what):
        convert(path, tmp_path / "no.slaf")
    assert not (tmp_path / "no.slaf").exists() and _hidden(tmp_path) == []
    done = _cli("convert", "--quiet", str(path), str(tmp_path / "no.slaf"))
    assert done.returncode == 1 and "--allow-nonfinite" in done.stderr, done.stderr
    with pytest.warns(UserWarning, match=what):
        convert(path, tmp_path / "yes.slaf", allow_nonfinite=True)
    data = SLAFArray(tmp_path / "yes.slaf")
    stored = data.get_submatrix(format="csr").toarray()[2, 3]
    expected = {1e40: np.inf}.get(bad, bad)  # beyond float32's range: stored as inf
    assert (np.isnan(stored) and np.isnan(bad)) or stored == expected
    stats = data.config["metadata"]["expression_stats"]
    assert stats["max_value"] == 1.0 and stats["std_value"] == 0.0
    done = _cli("convert", "--quiet", "--allow-nonfinite", str(path), str(tmp_path / "cli.slaf"))
    assert done.returncode == 0 and "slaf: warning:" in done.stderr, done.stderr


def test_appends_refuse_non_finite_values_too(tmp_path: Path) -> None:
    base = Path(convert(_h5ad(tmp_path / "a.h5ad", 5, "a", 1), tmp_path / "ds.slaf"))
    x = np.full((2, N_GENES), 0.5)
    x[1, 1] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        append(_h5ad(tmp_path / "b.h5ad", 2, "b", 2, x=x), base)
    assert SLAFArray(base).n_cells == 5


# ---------------------------------------------------------------------------------------------
# Leftovers and messages


def test_leftovers_of_killed_writes_are_removed_by_the_next_run(tmp_path: Path) -> None:
    staging = tmp_path / f".ds.slaf.writing-{DEAD_PID}-123"
    (staging / "expression.lance").mkdir(parents=True)
    scratch = tmp_path / f".slaf-scratch-{DEAD_PID}-abc"
    scratch.write_bytes(b"\0" * 1000)
    alive = tmp_path / f".ds.slaf.writing-{os.getpid()}-1"
    alive.mkdir()
    a = _h5ad(tmp_path / "a.h5ad", 5, "a", 1)
    done = _cli("convert", "--quiet", str(a), str(tmp_path / "ds.slaf"))
    assert done.returncode == 0, done.stderr
    assert not staging.exists() and not scratch.exists() and alive.exists()
    assert done.stderr.count("slaf: warning: removed") == 2, done.stderr


def test_a_killed_conversion_leaves_nothing_a_rerun_keeps(tmp_path: Path) -> None:
    a = _h5ad(tmp_path / "a.h5ad", 3000, "a", 1)
    out = tmp_path / "ds.slaf"
    proc = subprocess.Popen(
        [*SLAF_CLI, "convert", "--quiet", "--chunk-size", "10", str(a), str(out)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not any(".writing-" in n for n in _hidden(tmp_path)) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    if out.exists():  # it finished before the kill: nothing to test
        pytest.skip("the conversion finished before it could be killed")
    done = _cli("convert", "--quiet", str(a), str(out))
    assert done.returncode == 0, done.stderr
    assert _hidden(tmp_path) == [] and SLAFArray(out).n_cells == 3000


def test_errors_name_the_users_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.slaf"
    with pytest.raises(SLAFError, match=r"nope\.slaf"):
        append(_h5ad(tmp_path / "a.h5ad", 2, "a", 1), missing)
    folder = tmp_path / "plain"
    folder.mkdir()
    done = _cli("append", str(tmp_path / "a.h5ad"), str(folder))
    assert done.returncode == 1 and str(folder) in done.stderr and ".writing" not in done.stderr


def test_native_writer_reports_commit(tmp_path: Path) -> None:
    from slaf import _native

    writer = _native.NativeWriter.create(str(tmp_path / "w.slaf"), 1, 2, "uint16", [])
    writer.write_genes(pa.table({"gene_id": ["a", "b"]}))
    assert not writer.committed
    writer.finish()
    assert writer.committed
