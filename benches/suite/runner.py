"""How each (tool, scenario) is timed: in a fresh interpreter, a warm-up then repeated runs;
the median, every time, the process's peak RSS and a checksum of the result, which is
compared with ours so that a different answer is flagged rather than counted as a win."""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from suite.data import Dataset
from suite.report import flag_mismatches
from suite.scenarios import PRELUDE, Scenario, path_for
from suite.tools import Tool, run_fresh
from tqdm import tqdm

# Runs in a fresh interpreter: argv = code, a JSON file of the params (a file: 10,000 cell ids
# would pass the kernel's 128 KiB limit on one argument), warm-up runs, timed runs.
HARNESS = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
code, warmup, reps = sys.argv[1], int(sys.argv[3]), int(sys.argv[4])
with open(sys.argv[2]) as f:
    P = json.load(f)
ns = {"P": P}
out = {}
try:
    exec(code, ns)
    ns["setup"]()
    before, check = ns.get("before"), ns.get("check", lambda r: r)
    times = []
    for i in range(warmup + reps):
        if before:
            before()
        t = time.perf_counter()
        result = ns["run"]()
        elapsed = time.perf_counter() - t
        out["check"] = check(result)
        if i >= warmup:
            times.append(elapsed)
    out["times"] = times
except Exception as e:  # a tool that cannot run the scenario is marked, not dropped
    first = str(e).splitlines()[0][:120] if str(e) else ""
    out = {"error": f"{type(e).__name__}: {first}"}
out["peak_mib"] = _peak_mib()
if "slaf" in sys.modules:
    out["module"] = sys.modules["slaf"].__file__
print(json.dumps(out), flush=True)
os._exit(0)  # slafdb's background metadata thread would otherwise delay the exit
"""


def _harness(
    scenario: Scenario, tool: Tool, params: dict, warmup: int, reps: int, timeout: float
) -> dict:
    code = PRELUDE + scenario.snippet
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(params, file)
        file.flush()
        if not scenario.fresh_each_rep:
            args = [code, file.name, str(warmup), str(reps)]
            return run_fresh(tool.python, HARNESS, args, tool.is_slafdb, timeout)
        runs = []
        for _ in range(reps):
            args = [code, file.name, "0", "1"]
            runs.append(run_fresh(tool.python, HARNESS, args, tool.is_slafdb, timeout))
            if "error" in runs[-1]:
                return runs[-1]
    return {
        "times": [r["times"][0] for r in runs],
        "check": runs[-1]["check"],
        "peak_mib": max(r["peak_mib"] for r in runs),
    }


def run_cell(
    scenario: Scenario,
    tool: Tool,
    data: Dataset,
    sel: dict,
    reps: int,
    timeout: float,
    scratch: Path,
) -> dict:
    """One (tool, scenario): its measurements, or why it has none.

    Parameters
    ----------
    scenario, tool
        What runs, and who.
    data, sel
        The dataset and selections.
    reps
        Timed runs (after one warm-up unless the scenario is slow).
    timeout
        Seconds before one process is killed.
    scratch
        A folder for outputs (conversions).

    Returns
    -------
    dict
        ``status`` ("ran", "failed", "marked"), and for a run ``times``, ``median_s``,
        ``peak_mib``, ``check``; otherwise ``note``.
    """
    runs_it = tool.key in scenario.tools or tool.key in scenario.external
    if not runs_it:
        return {"status": "marked", "note": scenario.marks.get(tool.key, "n/a")}
    if tool.python is None:
        return {"status": "marked", "note": tool.missing}
    path = path_for(tool.key, data)
    if path is None:  # the copy it reads was not made: its maker is not installed
        note = "no copy: slafdb not installed" if tool.key == "ours_on_slafdb" else "not installed"
        return {"status": "marked", "note": note}
    if tool.key in scenario.external:
        result = scenario.external[tool.key](tool, data, sel, reps, timeout)
    else:
        params = {
            **sel,
            **scenario.params,
            "tool": tool.key,
            "path": path,
            "h5ad": str(data.h5ad),
            "scratch": str(scratch),
        }
        result = _harness(scenario, tool, params, 0 if scenario.slow else 1, reps, timeout)
    if "error" in result:
        return {"status": "failed", "note": "fails: " + result["error"]}
    times = result.get("times") or [result["median_s"]]
    out = {
        "status": "ran",
        "times": times,
        "median_s": statistics.median(times),
        "peak_mib": result.get("peak_mib"),
        "check": result["check"],
    }
    if result.get("note"):
        out["note"] = result["note"]
    if result.get("module"):
        out["module"] = result["module"]
    return out


def run_all(
    scenarios: list[Scenario],
    tools: list[Tool],
    data: Dataset,
    sel: dict,
    reps: int,
    reps_slow: int,
    timeout: float,
    scratch: Path,
) -> dict[str, dict[str, dict]]:
    """Every (tool, scenario), tools taking turns within each scenario.

    Returns
    -------
    dict
        scenario key → tool key → the cell of :func:`run_cell`, mismatches flagged.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    bar = tqdm(
        total=len(scenarios) * len(tools), disable=not sys.stdout.isatty(), unit="run", ncols=90
    )
    for scenario in scenarios:
        row: dict[str, dict] = {}
        for tool in tools:
            bar.set_description(f"{scenario.key} · {tool.key}"[:40])
            n = min(reps, reps_slow) if scenario.slow else reps
            row[tool.key] = run_cell(scenario, tool, data, sel, n, timeout, scratch)
            bar.update()
            if not sys.stdout.isatty():  # a log instead of the bar
                cell = row[tool.key]
                shown = f"{cell['median_s']:.4f} s" if "median_s" in cell else cell["note"]
                print(f"  {scenario.key:<17} {tool.key:<15} {shown}", flush=True)
        flag_mismatches(row)
        results[scenario.key] = row
    bar.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return results
