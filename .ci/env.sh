# Sourced by the .ci scripts: one place for paths shared by set-up, tests and benchmarks.
# The cargo target dir lives outside the clone so CI runs on a fresh clone stay incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/slaf/target}"
export VIRTUAL_ENV="$PWD/.venv"
export PATH="$VIRTUAL_ENV/bin:$HOME/.cargo/bin:$PATH"
# The profile the Python module was last built with (set-up records it; tests reuse it).
profile_file="$VIRTUAL_ENV/.slaf-build-profile"
slaf_profile() {
  if [ -n "${SLAF_PROFILE:-}" ]; then echo "$SLAF_PROFILE"
  elif [ -f "$profile_file" ]; then cat "$profile_file"
  else echo release; fi
}
build_python_module() {
  local profile; profile=$(slaf_profile)
  local flag=(); [ "$profile" = release ] && flag=(--release)
  echo "== building slaf (Rust core + native module, $profile)"
  maturin develop --quiet "${flag[@]}"
  echo "$profile" > "$profile_file"
}
