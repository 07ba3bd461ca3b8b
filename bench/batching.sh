#!/usr/bin/env bash
# Throughput of `gist serve` with the default models, with dynamic batching and without,
# measured back to back in one run (ratios, not absolute numbers, are what to compare on a
# shared machine). Usage: bench/batching.sh [SECONDS] [CONCURRENCY] [RPC]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
concurrency=${2:-8}
rpc=${3:-entities}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bin gist --example loadgen >&2
gist="$target/release/gist"
loadgen="$target/release/examples/loadgen"

run() { # NAME, then gist serve flags
  local name=$1; shift
  local port=$((40000 + RANDOM % 20000))
  "$gist" serve --listen "127.0.0.1:$port" --models models "$@" 2>/dev/null &
  local pid=$!
  for _ in $(seq 1 300); do
    if .tools/bin/grpcurl -plaintext -d '{"service":"gist.v1.EntityExtractor"}' "127.0.0.1:$port" \
         grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"'; then break; fi
    sleep 0.2
  done
  local line
  line=$("$loadgen" --addr "127.0.0.1:$port" --rpc "$rpc" --concurrency "$concurrency" --seconds "$seconds")
  kill -TERM "$pid"; wait "$pid" || true
  echo "{\"setting\":\"$name\",\"result\":$line}"
}

without=$(run "no batching (--max-batch 1)" --max-batch 1)
with=$(run "batching (--max-batch 16, --batch-delay-ms 5)" --max-batch 16 --batch-delay-ms 5)
echo "$without"
echo "$with"
python3 - "$without" "$with" <<'PY'
import json, sys
a, b = (json.loads(x)["result"] for x in sys.argv[1:3])
print(f"throughput with / without batching: {b['ok_per_second'] / a['ok_per_second']:.2f}x "
      f"({b['ok_per_second']:.2f} vs {a['ok_per_second']:.2f} requests/s); "
      f"p50 {b['p50_ms']:.0f} vs {a['p50_ms']:.0f} ms")
PY
