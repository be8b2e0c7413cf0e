# Sourced by the .ci scripts: one place for paths shared by set-up, tests and benchmarks.
# The cargo target dir lives outside the clone so CI runs on a fresh clone stay incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/slaf/target}"
export VIRTUAL_ENV="$PWD/.venv"
export PATH="$VIRTUAL_ENV/bin:$HOME/.cargo/bin:$PATH"
# The profile the Python module was last built with (set-up records it; tests reuse it). The
# default is cargo's dev profile with optimized dependencies (Cargo.toml): on two cores a clean
# release build of Lance, DataFusion and Polars alone takes over an hour. Release is for wheels
# (.ci/build-wheel) and benchmark numbers: SLAF_PROFILE=release bash .ci/setup.
profile_file="$VIRTUAL_ENV/.slaf-build-profile"
slaf_profile() {
  if [ -n "${SLAF_PROFILE:-}" ]; then echo "$SLAF_PROFILE"
  elif [ -f "$profile_file" ]; then cat "$profile_file"
  else echo debug; fi
}
# A step's heading, with the time of day: the logs then say where a run's time went.
step() { echo "== $(date +%H:%M:%S) $*"; }
# Cargo's output folder for a profile.
profile_dir() { if [ "$1" = release ]; then echo release; else echo debug; fi; }
# Cargo's flag for a profile (release: --release; debug: nothing).
profile_flag() { if [ "$1" = release ]; then echo --release; fi; }
# Builds the module (SLAF_CARGO_TIMINGS=1: also cargo's timing report, in
# $CARGO_TARGET_DIR/cargo-timings/).
build_python_module() {
  local profile; profile=$(slaf_profile)
  step "building slaf (Rust core + native module, $profile)"
  # shellcheck disable=SC2046  # the flag is one word or none
  maturin develop --quiet $(profile_flag "$profile") ${SLAF_CARGO_TIMINGS:+--timings}
  # The module is also the DuckDB extension SLAFArray.query loads: give it DuckDB's footer and
  # the file name DuckDB derives the extension's name from (a link, not a second copy).
  # shellcheck disable=SC2046
  cargo build --quiet $(profile_flag "$profile") -p slaf-duckdb --bin slaf-package-extension
  "$CARGO_TARGET_DIR/$(profile_dir "$profile")/slaf-package-extension" --in-place \
    python/slaf/_native.abi3.so >/dev/null
  ln -sfn _native.abi3.so python/slaf/slaf.duckdb_extension
  echo "$profile" > "$profile_file"
}
