"""The one-command benchmark suite (``python -m benches --quick``) runs end to end on generated
data and writes a complete record: every scenario, every tool run or marked with a reason,
ours always run, no peer whose answer differs from ours, and a PNG. Timings are not checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import slaf._native

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = [
    "convert",
    "open",
    "cell_filter",
    "gene_filter",
    "sql_cells",
    "sql_expression",
    "one_cell",
    "ten_genes",
    "submatrix",
    "cells_1000",
    "cells_10000",
    "predicate_cells",
    "pp",
    "loader_raw",
    "loader_geneformer",
    "loader_scgpt",
]
TOOLS = [
    "ours",
    "ours_no_cache",
    "ours_on_slafdb",
    "slafdb",
    "anndata_backed",
    "anndata_memory",
    "soma",
    "parquet_duckdb",
    "parquet_pyarrow",
    "scdataset",
    "annbatch",
]
# The rows of issue #18, where ours on slafdb's copy and the Parquet readers run too.
RANDOM_ACCESS = ["open", "one_cell", "submatrix", "cells_1000", "cells_10000", "predicate_cells"]


def test_quick_suite_writes_a_complete_record(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [sys.executable, "-m", "benches", "--quick", "--out", str(out)]
    done = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "data")],  # generated here: no shared data
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "median time (× ours)" in done.stdout

    [record_path] = out.glob("*.json")
    record = json.loads(record_path.read_text())
    assert record_path.stem.endswith("-5000x2000")
    assert list(record["tools"]) == TOOLS
    assert [s["key"] for s in record["scenarios"]] == SCENARIOS
    for key in ("machine", "versions", "command", "scale"):
        assert record[key], key
    assert record["versions"]["slaf_commit"]
    # The build ours came from is recorded, and a dev build is called out on stderr.
    assert record["versions"]["slaf_build"] == slaf._native.BUILD_PROFILE
    assert record["versions"]["slaf_io_uring"] == slaf._native.io_uring_reads()
    assert ("warning: ours is a debug build" in done.stderr) == (
        slaf._native.BUILD_PROFILE == "debug"
    )

    slafdb_missing = not (REPO / ".venv-slafdb" / "bin" / "python").exists()
    for scenario in record["scenarios"]:
        results = scenario["results"]
        assert list(results) == TOOLS, scenario["key"]
        ours = results["ours"]
        assert ours["status"] == "ran", (scenario["key"], ours)
        assert ours["check"] is not None and ours["times"], scenario["key"]
        for tool, cell in results.items():
            where = f"{scenario['key']}/{tool}"
            assert cell["status"] in ("ran", "failed", "marked"), (where, cell)
            if cell["status"] == "ran":
                assert cell["times"] and cell["median_s"] >= 0, where
                assert cell["check"] == ours["check"], where
            else:
                assert cell["note"], where
        assert results["annbatch"]["status"] == "marked"
        if slafdb_missing:
            assert results["slafdb"]["note"] == "not installed"
        # pyarrow and duckdb are dependencies of the dev environment: their rows must run.
        for tool in ("parquet_duckdb", "parquet_pyarrow", "ours_no_cache", "ours_on_slafdb"):
            if tool == "ours_on_slafdb" and slafdb_missing:
                continue
            ran = results[tool]["status"] == "ran"
            assert ran == (scenario["key"] in RANDOM_ACCESS), (scenario["key"], tool)

    # The Parquet copy's size and write time are recorded (and slafdb's copy's, when made).
    parquet = record["preparation"]["parquet"]
    assert parquet["bytes"] > 0 and parquet["write_s"] > 0 and parquet["sorted_by_cell"]
    if not slafdb_missing:
        assert record["preparation"]["slafdb_copy"]["convert_s"] > 0

    png = record_path.with_suffix(".png").read_bytes()
    assert png.startswith(b"\x89PNG")
