"""Benchmark ``get_submatrix``: ours vs slafdb 0.5.2 on the same generated dataset.

Both run in this process's run, one after the other, each in its own interpreter (slafdb lives
in ``.venv-slafdb``, made on first use), on the same dataset, the same random cells, warm page
cache. Prints medians and the ratio slafdb / ours.

Usage::

    .venv/bin/python benches/bench_submatrix.py [--cells 100000 --genes 20000 --nnz-per-cell 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import ensure_dataset

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SLAFDB_VENV = REPO / ".venv-slafdb"

# Runs inside either interpreter: `import slaf` is ours in .venv and slafdb in .venv-slafdb.
RUNNER = r"""
import json, sys, time
import numpy as np
from slaf import SLAFArray
path, reps = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
data = SLAFArray(path)
if hasattr(data, "wait_for_metadata"):
    data.wait_for_metadata()
open_s = time.perf_counter() - t0
n = data.shape[0]
rng = np.random.default_rng(0)
def timed(cells):
    t = time.perf_counter()
    out = data.get_submatrix(cells, None)
    return time.perf_counter() - t, out
timed([0])  # first query pays one-off costs (index load) in both
many, nnz = [], None
for _ in range(reps):
    cells = rng.choice(n, size=1000, replace=False).tolist()
    t, out = timed(cells)
    many.append(t)
    nnz = out.nnz if hasattr(out, "nnz") else out.height
one = [timed([int(rng.integers(n))])[0] for _ in range(reps * 5)]
print(json.dumps({"open_s": open_s, "many_s": many, "one_s": one, "values_1000": nnz,
                  "module": __import__("slaf").__file__}))
"""


def ensure_slafdb() -> Path:
    python = SLAFDB_VENV / "bin" / "python"
    if not python.exists():
        print("creating .venv-slafdb with slafdb==0.5.2 (first run only)", flush=True)
        venv.create(SLAFDB_VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "slafdb==0.5.2"], check=True)
    return python


def run_fresh(python: Path, runner: str, args: list[str], slafdb: bool) -> dict:
    """Runs the script ``runner`` with ``args`` in a fresh ``python``, whose last line of output
    is a JSON object; a failure comes back as ``{"error": ...}`` (its last line of stderr).
    slafdb runs without ``PYTHONPATH``, so that it imports its own ``slaf``, not ours."""
    env = dict(os.environ)
    if slafdb:
        env.pop("PYTHONPATH", None)
    done = subprocess.run([python, "-c", runner, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1][:160] if done.stderr else "crashed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(python: Path, path: Path, reps: int) -> dict:
    done = subprocess.run(
        [python, "-c", RUNNER, str(path), str(reps)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_ms(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz-per-cell", type=float, default=1500)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument(
        "--ours-python",
        type=Path,
        default=Path(sys.executable),
        help="interpreter whose `slaf` is ours (e.g. a venv with a release wheel)",
    )
    args = parser.parse_args()

    path = ensure_dataset(args.cells, args.genes, args.nnz_per_cell)
    ours = run(args.ours_python, path, args.reps)
    theirs = run(ensure_slafdb(), path, args.reps)
    config = json.loads((path / "config.json").read_text())
    nnz = config["metadata"]["expression_count"]
    print(
        f"\ndataset: {args.cells:,} cells × {args.genes:,} genes, {nnz:,} non-zeros "
        f"({nnz / args.cells:.0f}/cell), {path}"
    )
    print(f"ours: {ours['module']}\nslafdb: {theirs['module']}\n")
    print(f"{'query':<28}{'ours (ms)':>12}{'slafdb (ms)':>14}{'slafdb/ours':>14}")
    rows = [
        ("open (slafdb: + obs/var)", [ours["open_s"]], [theirs["open_s"]]),
        ("get_submatrix 1000 cells", ours["many_s"], theirs["many_s"]),
        ("get_submatrix 1 cell", ours["one_s"], theirs["one_s"]),
    ]
    for name, a, b in rows:
        ma, mb = median_ms(a), median_ms(b)
        print(f"{name:<28}{ma:>12.2f}{mb:>14.2f}{mb / ma:>13.1f}×")
    print(
        f"\nvalues per 1000-cell query: ours {ours['values_1000']:,} (CSR), "
        f"slafdb {theirs['values_1000']:,} (long DataFrame rows)"
    )


if __name__ == "__main__":
    main()
