#!/usr/bin/env bash
# Articles per second through `gist batch` (the streaming RPC) against one unary call at a
# time, on the same server with the default models, back to back in one run.
# Usage: bench/batch_throughput.sh [INPUT.jsonl] [TEXT_FIELD] [TASK]
#   default: ../shared/data/cnndm/dev.jsonl article summarize
set -euo pipefail
cd "$(dirname "$0")/.."
input=${1:-../shared/data/cnndm/dev.jsonl}
field=${2:-article}
task=${3:-summarize}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bin gist --example unary_pass >&2
gist="$target/release/gist"
port=$((40000 + RANDOM % 20000))
"$gist" serve --listen "127.0.0.1:$port" --models models 2>/dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if .tools/bin/grpcurl -plaintext -d '{"service":"gist.v1.Analyzer"}' "127.0.0.1:$port" \
       grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"'; then break; fi
  sleep 0.2
done
n=$(grep -c . "$input")
unary=$("$target/release/examples/unary_pass" --addr "127.0.0.1:$port" --task "$task" \
  --input "$input" --text-field "$field")
out=$(mktemp -d)
start=$(date +%s.%N)
"$gist" batch --task "$task" --input "$input" --text-field "$field" \
  --output "$out/out.jsonl" --endpoint "127.0.0.1:$port" --log-every-secs 0 2>"$out/log" \
  || { cat "$out/log" >&2; exit 1; }
end=$(date +%s.%N)
done_lines=$(wc -l < "$out/out.jsonl")
echo "$unary"
tail -1 "$out/log"
python3 - "$unary" "$start" "$end" "$done_lines" "$n" <<'PY'
import json, sys
unary = json.loads(sys.argv[1])
start, end, done, n = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
stream = done / (end - start)
print(f"{n} articles: stream (gist batch) {stream:.2f}/s, unary one at a time "
      f"{unary['items_per_second']:.2f}/s: {stream / unary['items_per_second']:.2f}x")
PY
rm -rf "$out"
