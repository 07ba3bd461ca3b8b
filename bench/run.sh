#!/usr/bin/env bash
# The benchmark suite, one command (bench/README.md): prepares what it needs, then runs
# bench/run.py with the peers' Python.
#   bench/run.sh              every comparison, then BENCHMARKS.md and docs/benchmarks/*.svg
#   bench/run.sh --quick      every benchmark on tiny inputs (CI); bench/results/quick/
#   bench/run.sh --only soak  one part again (ner, generate, keypoints, server, soak, profile)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh   # libtorch, the default models, grpcurl
# The ONNX-only build first (its binary is kept, stripped, as target/release/gist-onnx-only
# for the memory and size rows), then the default build the rest measures.
cargo build --release --locked --bin gist --no-default-features --features onnx
strip -o target/release/gist-onnx-only target/release/gist
cargo build --release --locked --bin gist \
  --example bench_ner --example bench_generate --example bench_keypoints --example loadgen
bench/peers/setup.sh    # torch 2.4.0 + transformers + matplotlib, CPU only
exec bench/peers/.venv/bin/python bench/run.py "$@"
