"""``python -m benches``: generate the data at one scale, run every (tool, scenario), print the
table and write ``<out>/<date>-<cells>x<genes>.json`` and ``.png``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

from suite import environment, report
from suite.data import prepare, selections
from suite.runner import run_all
from suite.scenarios import scenarios
from suite.tools import available_tools

from synthetic import add_scale_arguments

HERE = Path(__file__).resolve().parents[1]
QUICK = {"cells": 5_000, "genes": 2_000, "nnz_per_cell": 300, "reps": 1}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benches",
        description="Compare SLAF with slafdb, anndata, TileDB-SOMA, scDataset and a Parquet "
        "copy read by DuckDB and pyarrow on generated data: a table on stdout, a JSON record "
        "and a PNG plot.",
    )
    add_scale_arguments(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5,000 cells × 2,000 genes × 300 values/cell, 1 repetition: a few minutes",
    )
    parser.add_argument("--reps", type=int, help="timed runs after a warm-up (default 5)")
    parser.add_argument(
        "--reps-slow", type=int, default=1, help="runs of the slow scenarios (convert, pp, loaders)"
    )
    parser.add_argument("--only", help="scenarios to run, comma-separated (default: all)")
    parser.add_argument("--tools", help="tools to run, comma-separated (ours always runs)")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="folder for the JSON and PNG"
    )
    parser.add_argument("--data-dir", type=Path, help="where generated data is cached")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    parser.add_argument(
        "--replot", type=Path, metavar="JSON", help="reprint the table and redraw the PNG of a run"
    )
    args = parser.parse_args(argv)
    if args.quick:
        defaults = parser.parse_args([])
        for key, value in QUICK.items():
            if getattr(args, key) in (None, getattr(defaults, key)):
                setattr(args, key, value)
    args.reps = args.reps or 5
    return args


def pp_params(cells: int, genes: int, nnz_per_cell: float) -> dict:
    """The recipe's parameters at this scale: scanpy's usual ones at full scale, scaled down
    so that a small dataset keeps most cells and genes."""
    return {
        "min_genes": 200 if nnz_per_cell >= 1000 else max(10, int(nnz_per_cell / 5)),
        "n_top": min(2000, genes // 4),
        "n_comps": min(50, genes // 20, cells // 20),
    }


def command() -> str:
    """This run's command line, with the PYTHONPATH that picks our build when one was set."""
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    line = shlex.join([str(python), "-m", "benches", *sys.argv[1:]])
    path = os.environ.get("PYTHONPATH")
    return f"PYTHONPATH={shlex.quote(path)} {line}" if path else line


def main(argv: list[str] | None = None) -> None:
    """Run the suite."""
    args = parse(argv)
    if args.replot:
        record = json.loads(args.replot.read_text())
        rows = {s["key"]: s["results"] for s in record["scenarios"]}
        labels = {s["key"]: s["label"] for s in record["scenarios"]}
        report.print_table(rows, labels, record["tools"], record["command"])
        report.write_png(args.replot.with_suffix(".png"), record)
        return
    started = time.perf_counter()
    tools = available_tools()
    if args.tools:
        wanted = {"ours", *args.tools.split(",")}
        tools = [t for t in tools if t.key in wanted]
    machine, versions = environment.machine(), environment.versions(tools)
    if versions["slaf_build"] != "release":
        print(
            f"warning: ours is a {versions['slaf_build'] or 'unknown'} build "
            f"({versions['slaf_module']}); its times are not ours in release. Build release "
            "first (SLAF_PROFILE=release bash .ci/setup) "
            "or pass PYTHONPATH=<release checkout>/python",
            file=sys.stderr,
        )
    data = prepare(args.cells, args.genes, args.nnz_per_cell, args.data_dir, {t.key for t in tools})
    sel = selections(data)
    sel["pp"] = pp_params(args.cells, args.genes, args.nnz_per_cell)
    chosen = scenarios(sel)
    if args.only:
        keys = args.only.split(",")
        unknown = set(keys) - {s.key for s in chosen}
        if unknown:
            sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        chosen = [s for s in chosen if s.key in keys]
    with open(data.h5ad, "rb") as f:  # into the page cache, for every tool alike
        while f.read(1 << 24):
            pass
    scratch = data.plain.parent / f"suite_scratch_{data.plain.stem}"
    results = run_all(chosen, tools, data, sel, args.reps, args.reps_slow, args.timeout, scratch)

    cells, genes = data.shape
    columns = {t.key: t.label for t in tools}
    stem = f"{dt.date.today().isoformat()}-{cells}x{genes}"
    if args.only or args.tools:  # a partial run does not replace the full one of the day
        stem += "-partial"
    record = {
        "command": command(),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "scale": {"cells": cells, "genes": genes, "nnz": data.nnz, "per_cell": args.nnz_per_cell},
        "reps": args.reps,
        "reps_slow": args.reps_slow,
        "machine": machine,
        "versions": versions,
        "data": {
            "ours": str(data.indexed),
            "slafdb": str(data.plain),
            "h5ad": str(data.h5ad),
            "soma": str(data.soma),
            "ours_on_slafdb": str(data.slafdb_copy),
            "parquet": str(data.parquet),
        },
        # How each copy was made, measured when it was written (cached copies keep theirs).
        "preparation": data.preparation,
        "tools": columns,
        "scenarios": [
            {
                "key": s.key,
                "label": s.label,
                "group": s.group,
                "description": s.description,
                "results": results[s.key],
            }
            for s in chosen
        ],
    }
    title = (
        f"\n{cells:,} cells × {genes:,} genes, {data.nnz:,} values "
        f"({data.nnz / cells:,.0f}/cell); median of {args.reps} after a warm-up "
        f"({args.reps_slow} for convert, pp and loaders); each (tool, scenario) in a fresh process"
    )
    report.print_table(results, {s.key: s.label for s in chosen}, columns, title)
    json_path = args.out / f"{stem}.json"
    report.write_json(json_path, record)
    report.write_png(json_path.with_suffix(".png"), record)
    print(
        f"\nwrote {json_path} and {json_path.with_suffix('.png').name} "
        f"in {record['seconds']:.0f} s; ours: {record['versions']['slaf_module']}"
    )
