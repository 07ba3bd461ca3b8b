#!/usr/bin/env bash
# Run every cargo-fuzz target of fuzz/ (the pure text functions) for SECONDS each.
#   scripts/fuzz.sh        5 s each: what `make test` runs, so the targets keep building
#   scripts/fuzz.sh 600    10 minutes each, as the README's fuzzing numbers were measured
# cargo-fuzz needs a nightly toolchain (libFuzzer's instrumentation); cargo-fuzz itself is
# installed from crates.io here when missing. A crash stops the run and leaves its input
# in fuzz/artifacts/TARGET/; make it a unit test next to the function.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-5}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly Rust toolchain (rustup toolchain install nightly): fuzz targets not run" >&2
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# No sanitizer: the text functions are safe Rust, and libFuzzer's coverage guidance is
# what finds their panics; debug assertions (overflow checks) stay on.
targets=$(cargo fuzz list)
cargo +nightly fuzz build -s none
for target in $targets; do
  mkdir -p "corpus/$target"
  out=$(cargo +nightly fuzz run -s none "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1) || {
    echo "$out" | tail -40
    echo "fuzz: $target failed (see fuzz/artifacts/$target/)" >&2
    exit 1
  }
  runs=$(echo "$out" | sed -n 's/^stat::number_of_executed_units: *//p')
  echo "fuzz: $target: ${runs:-?} executions in ${seconds} s, no failure"
done
