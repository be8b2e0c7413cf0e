"""Benchmark ``SLAFDataLoader``: ours vs slafdb 0.5.2's, on the same generated dataset.

For each mode (geneformer, scgpt, raw) both loaders run one epoch with the same settings, each in
a fresh interpreter (slafdb lives in ``.venv-slafdb``, with torch, made on first use; both share
the import name ``slaf``). Reported: cells/s and non-pad tokens/s over the loop (loader
construction and the first batch timed apart), and the process's peak memory (RSS).

Usage::

    .venv/bin/python benches/bench_loader.py [--cells 100000 --genes 20000 --nnz-per-cell 1500]
    .venv/bin/python benches/bench_loader.py --cells 2000 --genes 2000 --nnz-per-cell 300
    .venv/bin/python benches/bench_loader.py --cuda   # also: batches → .cuda(non_blocking=True)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite.tools import SLAFDB_VENV, ensure_slafdb, run_fresh

from synthetic import add_scale_arguments, ensure_dataset

MODES = ("geneformer", "scgpt", "raw")

# Runs inside either interpreter: `import slaf` is ours in .venv and slafdb in .venv-slafdb.
RUNNER = r"""
import json, sys, time
path, mode, batch_size, max_genes, cuda, ours = sys.argv[1:7]
batch_size, max_genes, cuda, ours = int(batch_size), int(max_genes), cuda == "1", ours == "1"
import torch
from slaf import SLAFArray
from slaf.ml.dataloaders import SLAFDataLoader
t0 = time.perf_counter()
kwargs = dict(batch_size=batch_size, max_genes=max_genes, verbose=False)
if mode == "raw":
    kwargs["raw_mode"] = True
else:
    kwargs["tokenizer_type"] = mode
if ours and cuda:
    kwargs["pin_memory"] = True
data = SLAFArray(path)
if hasattr(data, "wait_for_metadata"):  # slafdb loads metadata in the background
    data.wait_for_metadata()
loader = SLAFDataLoader(data, **kwargs)
it = iter(loader)
first = next(it)
setup_s = time.perf_counter() - t0
cells = tokens = 0
t1 = time.perf_counter()
for batch in it:
    cells += len(batch["cell_ids"])
    if mode != "raw":
        tokens += int(batch["attention_mask"].sum())
    if cuda:
        key = "x" if mode == "raw" else "input_ids"
        if torch.is_tensor(batch[key]):
            batch[key].cuda(non_blocking=True)
    last = time.perf_counter()
if cuda:
    torch.cuda.synchronize()
    last = time.perf_counter()
# Until the last batch arrived: a loader's wait to notice the end of the data is not counted.
loop_s = (last if cells else time.perf_counter()) - t1
print(json.dumps({
    "setup_s": setup_s, "loop_s": loop_s, "cells": cells, "tokens": tokens,
    "first_shape": list(first["input_ids"].shape) if "input_ids" in first else None,
    "first_cells": len(first["cell_ids"]),
    "first_tokens": int(first["attention_mask"].sum()) if mode != "raw" else 0,
    "peak_mb": _peak_mib(),  # run_fresh defines it
    "module": __import__("slaf").__file__,
}))
"""


def run(python: Path, path: Path, mode: str, args: argparse.Namespace, ours: bool) -> dict:
    """One epoch in a fresh ``python``; slafdb's (``ours`` false) runs without PYTHONPATH."""
    argv = [str(path), mode, str(args.batch_size), str(args.max_genes)]
    argv += ["1" if args.cuda else "0", "1" if ours else "0"]
    return run_fresh(python, RUNNER, argv, slafdb=not ours, timeout=args.timeout)


def main() -> None:
    parser = argparse.ArgumentParser()
    add_scale_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-genes", type=int, default=2048)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--cuda", action="store_true", help="move batches to the GPU too")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--slafdb-python", type=Path, default=SLAFDB_VENV / "bin" / "python", help="slafdb's venv"
    )
    parser.add_argument("--skip-slafdb", action="store_true")
    args = parser.parse_args()
    path = ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    peers = [("slaf (ours)", Path(sys.executable), True)]
    if not args.skip_slafdb:
        slafdb = args.slafdb_python
        if slafdb == SLAFDB_VENV / "bin" / "python":  # ours to make, with torch
            slafdb = ensure_slafdb(torch=True)
        peers.append(("slafdb 0.5.2", slafdb, False))
    print(
        f"dataset {path.name}; batch_size {args.batch_size}, max_genes {args.max_genes}"
        + (", batches moved to CUDA" if args.cuda else "")
    )
    header = (
        f"{'mode':<11}{'loader':<14}{'cells/s':>12}{'tokens/s':>14}{'setup s':>9}{'peak MB':>9}"
    )
    print(header)
    rates: dict[tuple[str, str], float] = {}
    for mode in args.modes.split(","):
        for name, python, ours in peers:
            r = run(python, path, mode, args, ours)
            if "error" in r:
                print(f"{mode:<11}{name:<14}  error: {r['error']}")
                continue
            cells_s = r["cells"] / r["loop_s"]
            tokens_s = r["tokens"] / r["loop_s"]
            rates[(mode, name)] = cells_s
            print(
                f"{mode:<11}{name:<14}{cells_s:>12,.0f}{tokens_s:>14,.0f}"
                f"{r['setup_s']:>9.2f}{r['peak_mb']:>9.0f}",
                flush=True,
            )
        ours_rate, peer_rate = rates.get((mode, peers[0][0])), rates.get((mode, "slafdb 0.5.2"))
        if ours_rate and peer_rate:
            print(f"{'':<11}{'ours/slafdb':<14}{ours_rate / peer_rate:>11.1f}x")


if __name__ == "__main__":
    main()
