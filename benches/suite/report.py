"""The results as a person reads them: a table on stdout (median time and peak RSS per tool,
with the ratio to ours), the JSON record and a PNG plot. ``print_table`` is also the table of
the single-area benches (``bench_python_layer``, ``bench_pp``, ``bench_submatrix``).

A cell is a dict: ``status`` "ran" (``median_s``, ``peak_mib``, ``check``, ``ratio`` to ours),
"mismatch" (ran, but its checksum differs from ours: shown with ≠, never a win), "failed" or
"marked" (``note`` says why).
"""

from __future__ import annotations

import json
from pathlib import Path

MISMATCH = "≠"


def cell_from(result: dict) -> dict:
    """A cell from a bench runner's result (``median_s``, ``peak_mib``, ``check`` or ``error``).

    Parameters
    ----------
    result
        The runner's JSON object.

    Returns
    -------
    dict
        The cell, not yet compared with ours (see :func:`flag_mismatches`).
    """
    if "error" in result:
        return {"status": "failed", "note": "fails: " + result["error"]}
    return {
        "status": "ran",
        "median_s": result["median_s"],
        "peak_mib": result.get("peak_mib"),
        "check": result.get("check"),
    }


def flag_mismatches(row: dict[str, dict], ours: str = "ours") -> None:
    """Set each peer's ``ratio`` (its median time / ours) and flag ("mismatch") those whose
    checksum differs from ours, in place.

    Parameters
    ----------
    row
        Tool key → cell, for one scenario.
    ours
        The key of the reference tool.
    """
    base = row.get(ours, {})
    for key, cell in row.items():
        if key == ours or cell["status"] != "ran" or base.get("status") != "ran":
            continue
        if cell.get("check") != base.get("check"):
            cell["status"] = "mismatch"
        cell["ratio"] = cell["median_s"] / base["median_s"]


def format_time(seconds: float) -> str:
    """A duration in the unit that keeps 3 significant digits readable."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s" if seconds < 100 else f"{seconds:.0f} s"


def _text(cell: dict, what: str, notes: dict[str, int]) -> str:
    if cell["status"] in ("failed", "marked"):
        note = cell["note"]
        number = notes.setdefault(note, len(notes) + 1)
        return f"[{number}] {note}"[:19]
    if what == "time":
        text = format_time(cell["median_s"])
        if "ratio" in cell:
            ratio = cell["ratio"]
            text += f" ×{ratio:.2g}" if ratio < 10 else f" ×{ratio:,.0f}"
    else:
        peak = cell.get("peak_mib")
        text = "—" if peak is None else f"{peak:,.0f} MiB"
    return text + (f" {MISMATCH}" if cell["status"] == "mismatch" else "")


def print_table(
    rows: dict[str, dict[str, dict]],
    labels: dict[str, str],
    tools: dict[str, str],
    title: str = "",
    memory: bool = True,
) -> None:
    """Print the median time per (row, tool) with its ratio to ours, then the peak RSS.

    Parameters
    ----------
    rows
        Row key → tool key → cell.
    labels
        Row key → row heading, in print order.
    tools
        Tool key → column heading, in print order (ours first).
    title
        A line printed above.
    memory
        Also print the peak-RSS table.
    """
    width = max(20, *(len(t) + 2 for t in tools.values()))
    first = max(len(label) for label in labels.values()) + 2
    notes: dict[str, int] = {}
    if title:
        print(title)
    for what in ("time", "memory") if memory else ("time",):
        heading = "median time (× ours)" if what == "time" else "peak RSS"
        print(f"\n{heading:<{first}}" + "".join(f"{t:>{width}}" for t in tools.values()))
        for key, label in labels.items():
            row = rows.get(key, {})
            missing = {"status": "marked", "note": "not run"}
            cells = [_text(row.get(tool, missing), what, notes) for tool in tools]
            print(f"{label:<{first}}" + "".join(f"{c:>{width}}" for c in cells))
    print(f"\n×: the tool's median time / ours (above 1: ours is faster); {MISMATCH}: its")
    print("answer's checksum differs from ours (not a win)")
    for note, number in notes.items():
        print(f"[{number}] {note}")


def write_json(path: Path, record: dict) -> None:
    """Write the run's record (see ``suite.cli``), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def write_png(path: Path, record: dict) -> None:
    """One panel per scenario group: log-scale median time, tools side by side per scenario.

    A hatched bar is a mismatch (its answer differs from ours); a tool with no bar did not run
    the scenario (the JSON and the table say why).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tools = record["tools"]
    groups: dict[str, list[dict]] = {}
    for scenario in record["scenarios"]:
        groups.setdefault(scenario["group"], []).append(scenario)
    cols = 2 if len(groups) > 1 else 1
    nrows = (len(groups) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(7.5 * cols, 4.2 * nrows), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    step = 0.8 / len(tools)
    for ax, (group, scenarios) in zip(axes.flat, groups.items(), strict=False):
        for t, tool in enumerate(tools):
            xs, heights, hatches = [], [], []
            for x, scenario in enumerate(scenarios):
                cell = scenario["results"].get(tool, {})
                if cell.get("status") in ("ran", "mismatch"):
                    xs.append(x - 0.4 + step * (t + 0.5))
                    heights.append(cell["median_s"])
                    hatches.append("//" if cell["status"] == "mismatch" else "")
            bars = ax.bar(xs, heights, step, color=colors[t % 10], label=tools[tool])
            for bar, hatch in zip(bars, hatches, strict=True):
                bar.set_hatch(hatch)
        ax.set_yscale("log")
        ax.set_title(group)
        ax.set_ylabel("median time (s, log)")
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([s["label"] for s in scenarios], rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", which="major", alpha=0.3)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    # Handles made here: a tool with no bar in the first panel still gets its colour.
    handles = [Patch(color=colors[t % 10], label=label) for t, label in enumerate(tools.values())]
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=len(tools),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.965),
    )
    scale = record["scale"]
    fig.suptitle(
        f"{scale['cells']:,} cells × {scale['genes']:,} genes, {scale['nnz']:,} values; "
        "lower is better; hatched: answer differs from ours; no bar: not run (see the table)",
        y=0.995,
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
