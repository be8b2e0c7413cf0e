"""Checks that the workspace compiles its dependencies once: the DuckDB extension's build and
`cargo test -p slaf` must use only units (crate, features, profile, dependencies) that the
Python module's build already compiled. A dependency change that resolves other features in
one member's graph (often a build-script dependency on the host) would otherwise rebuild the
Lance/DataFusion tree per member, 10-20 minutes each on two cores.

Cargo's unit graph is the only way to see this without building; it is still unstable, so
this reads it with RUSTC_BOOTSTRAP=1. Usage: python .ci/one_build.py [--release]
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys


def unit_graph(*args: str) -> dict:
    """Cargo's unit graph of `cargo <args>` (nothing is built)."""
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    command = ["cargo", *args, "--unit-graph", "-Z", "unstable-options"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def unit_digests(graph: dict) -> list[tuple[str, str, list[int]]]:
    """Per unit: its name (package, target, mode), a digest of everything that decides its
    artifact (its dependencies' digests included) and its dependencies' indices. The profile's
    name is left out: `cargo test` builds dependencies in the `test` profile, which compiles
    them exactly as `dev` does."""
    units = graph["units"]
    digests: dict[int, str] = {}

    def digest(i: int) -> str:
        if i not in digests:
            unit = units[i]
            profile = {k: v for k, v in unit["profile"].items() if k != "name"}
            deps = sorted(digest(d["index"]) for d in unit["dependencies"])
            text = json.dumps(
                [unit["pkg_id"], unit["target"]["name"], unit["features"], profile,
                 unit["platform"], unit["mode"], deps],
                sort_keys=True,
            )  # fmt: skip
            digests[i] = hashlib.sha1(text.encode()).hexdigest()
        return digests[i]

    return [
        (
            f"{u['pkg_id'].split('#')[-1]} {u['target']['name']} ({u['mode']})",
            digest(i),
            [d["index"] for d in u["dependencies"]],
        )
        for i, u in enumerate(units)
    ]


def main() -> None:
    profile = ["--release"] if "--release" in sys.argv[1:] else []
    module = unit_digests(unit_graph("build", "--offline", "-p", "slaf-python", "--lib", *profile))
    compiled = {(name, digest) for name, digest, _ in module}
    names = {name for name, _, _ in module}
    others = {
        "the DuckDB extension": unit_graph("build", "--offline", "-p", "slaf-duckdb", *profile),
        "cargo test -p slaf": unit_graph("test", "--offline", "-p", "slaf", *profile),
    }
    failed = False
    for what, graph in others.items():
        units = unit_digests(graph)
        # A unit the module also builds, but differently.
        differs = [n in names and (n, d) not in compiled for n, d, _ in units]
        # The causes: differing units whose own dependencies all match.
        causes = sorted(
            {
                n
                for i, (n, _, deps) in enumerate(units)
                if differs[i] and not any(differs[j] for j in deps)
            }
        )
        if causes:
            failed = True
            print(f"{what} compiles {sum(differs)} units differently from the Python module;")
            print("these differ themselves (features), the rest only through them:")
            for name in causes:
                print(f"  {name}")
    if failed:
        sys.exit(
            "error: align their features with pins in Cargo.toml ([dependencies] for the "
            "target, [build-dependencies] for the host)"
        )
    print("one build: the extension and cargo test reuse the Python module's units")


if __name__ == "__main__":
    main()
