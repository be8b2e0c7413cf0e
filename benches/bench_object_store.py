"""Benchmark reads on S3 against the same reads on local disk: the generated dataset uploaded to
a real S3 API on loopback (moto_server), opened in place with ``storage_options``.

Rows: open, a metadata query (SQL over ``cells``), one cell, 1,000 random cells, and the first
10,000 cells of a data-loader epoch (Geneformer tokens). Each (location, row) runs in a fresh
interpreter: open, one warm-up, then ``--reps`` timed runs; the median is reported with the
ratio S3 / local (target: within 3x on loopback) and the number of requests that reached the
S3 API for one run of the row (from moto_server's request log).

Loopback has no network latency or bandwidth limit: what this measures is the cost of going
through the object-store client (requests, their sizes, how they are coalesced) rather than
of a real network.

Usage::

    .venv/bin/python benches/bench_object_store.py [--cells 100000 --genes 20000 --reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moto_s3 import MotoS3

from synthetic import ensure_dataset

# Runs in a fresh interpreter: argv = row, uri, storage options (JSON), moto log ("" when
# local), reps. Prints one JSON line: median seconds, requests of one run, a checksum.
RUNNER = r"""
import json, re, statistics, sys, time
import numpy as np
from slaf import SLAFArray
row, uri, options, log, reps = sys.argv[1:6]
options, reps = json.loads(options) or None, int(reps)

def requests():
    if not log:
        return 0
    time.sleep(0.2)
    return sum(' "' in l for l in open(log).read().splitlines())

cells = np.sort(np.random.default_rng(7).choice(int(sys.argv[6]), 1000, replace=False))
data = SLAFArray(uri, storage_options=options)

def run():
    if row == "open":
        d = SLAFArray(uri, storage_options=options)
        return d.shape[0]
    if row == "metadata":
        df = data.query(
            "SELECT cell_type, count(*) AS n, avg(total_counts) AS mean FROM cells "
            "WHERE donor_id = 'D3' GROUP BY cell_type ORDER BY cell_type"
        )
        return int(df["n"].sum())
    if row == "one_cell":
        return float(data.get_submatrix([12345], format="csr").sum())
    if row == "random_1000":
        return float(data.get_submatrix(cells, format="csr").sum())
    if row == "loader_10k":
        from slaf.ml import SLAFDataLoader
        loader = SLAFDataLoader(
            data, tokenizer_type="geneformer", batch_size=32, max_genes=2048, verbose=False
        )
        seen = total = 0
        for batch in loader:
            seen += len(batch["cell_ids"])
            total += int(batch["input_ids"].sum())
            if seen >= 10_000:
                break
        return total
    raise SystemExit(f"unknown row {row}")

checksum = run()  # warm-up
before = requests()
times = []
for i in range(reps):
    t = time.perf_counter()
    assert run() == checksum
    times.append(time.perf_counter() - t)
    if i == 0:
        one = requests() - before
print(json.dumps({"seconds": statistics.median(times), "requests": one, "checksum": checksum}))
"""

ROWS = ["open", "metadata", "one_cell", "random_1000", "loader_10k"]


def measure(row: str, uri: str, options: dict, log: str, reps: int, n_cells: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, row, uri, json.dumps(options), log, str(reps), str(n_cells)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz", type=float, default=1500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra storage option for the S3 runs, e.g. block_size=1048576 (Lance merges "
        "reads of one file closer than this into one request)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    extra = dict(option.split("=", 1) for option in args.storage_option)
    local = ensure_dataset(args.cells, args.genes, args.nnz)
    size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file())
    with tempfile.TemporaryDirectory() as tmp, MotoS3(Path(tmp)) as s3:
        s3.create_bucket("bench")
        print(f"uploading {local.name} ({size / 1e6:.0f} MB) to {s3.endpoint} ...", flush=True)
        uri = s3.upload(local, "bench", local.name)
        print(
            f"dataset: {args.cells:,} cells x {args.genes:,} genes, ~{args.nnz:.0f} values per "
            f"cell; {args.reps} runs per row after a warm-up, each (location, row) in a fresh "
            f"process; {os.cpu_count()} cores; extra S3 options: {extra or 'none'}\n"
        )
        print(f"{'row':<14}{'local ms':>10}{'S3 ms':>10}{'S3/local':>10}{'S3 requests':>13}")
        results = []
        for row in ROWS:
            here = measure(row, str(local), {}, "", args.reps, args.cells)
            there = measure(row, uri, s3.options | extra, str(s3.log), args.reps, args.cells)
            result = {"row": row, "local": here, "s3": there}
            results.append(result)
            if "error" in here or "error" in there:
                print(f"{row:<14} failed: {here.get('error') or there.get('error')}")
                continue
            if here["checksum"] != there["checksum"]:
                print(f"{row:<14} DIFFERENT RESULTS: {here['checksum']} vs {there['checksum']}")
                continue
            ratio = there["seconds"] / here["seconds"]
            result["ratio"] = ratio
            print(
                f"{row:<14}{here['seconds'] * 1e3:>10.1f}{there['seconds'] * 1e3:>10.1f}"
                f"{ratio:>9.2f}x{there['requests']:>13}"
            )
        worst = max((r.get("ratio", float("inf")) for r in results), default=float("inf"))
        verdict = "met" if worst <= 3 else "missed"
        print(f"\ntarget (every row within 3x of local on loopback): {verdict}, worst {worst:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=1
            )
        )


if __name__ == "__main__":
    main()
