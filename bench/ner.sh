#!/usr/bin/env bash
# NER throughput: gist's engine (examples/bench_ner.rs) against the transformers
# token-classification pipeline (bench/peers/ner_peer.py, aggregation "simple"), on the same
# weights, the same articles, the same libtorch and thread count; each setting in a fresh
# process on each side, back to back. Prints one JSON line per run and a Markdown table.
# Usage: bench/ner.sh [SECONDS] [WORDS] [CONCURRENCY] [MODELS...]
#   defaults: 10  200,800,3000  1,8  default random-bert-base
# Articles of up to 200 words are measured for SECONDS after a 2 s warm-up; longer ones by a
# count of calls (each caller: one warm-up call, then CALLS measured ones, default 3), since
# at 8 concurrent callers one round of a 3,000-word article outlasts any short window.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
words=${2:-200,800,3000}
concurrency=${3:-1,8}
if [ $# -gt 3 ]; then models=("${@:4}"); else models=(default random-bert-base); fi
threads=${THREADS:-$(nproc)}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bin gist --example bench_ner >&2
bench/peers/setup.sh >&2
py=bench/peers/.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=${RESULTS:-bench/results/ner.jsonl}
mkdir -p "$(dirname "$results")"
: > "$results"

# The articles, written once so both sides read identical text.
IFS=, read -r -a word_list <<< "$words"
IFS=, read -r -a conc_list <<< "$concurrency"
PYTHONPATH=bench/peers "$py" - "$work" "${word_list[@]}" <<'PY'
import sys, peerlib
out = sys.argv[1]
for w in sys.argv[2:]:
    open(f"{out}/article-{w}w.txt", "w").write(peerlib.article(int(w)) + "\n")
PY

calls=${CALLS:-3}
for model in "${models[@]}"; do
  case $model in
    default)
      gist_models=models
      peer_args=(--model models/conll03-minilm-ner) ;;
    random-bert-base)
      # The peer writes the random BERT-base weights; gist imports the very same files.
      "$py" bench/peers/ner_peer.py --model models/conll03-minilm-ner --random-bert-base \
        --save-random "$work/random-bert-base" >&2
      mkdir -p "$work/models"
      "$target/release/gist" models import "$work/random-bert-base" --as random-bert-base \
        --task ner --models "$work/models" >&2
      gist_models=$work/models
      peer_args=(--model "$work/random-bert-base") ;;
    *) echo "unknown model $model (default, random-bert-base)" >&2; exit 2 ;;
  esac
  for w in "${word_list[@]}"; do
    if [ "$w" -le 200 ]; then measure=(--seconds "$seconds"); else measure=(--calls "$calls"); fi
    for c in "${conc_list[@]}"; do
      "$target/release/examples/bench_ner" --models "$gist_models" --text "$work/article-${w}w.txt" \
        --concurrency "$c" "${measure[@]}" --threads "$threads" \
        | sed "s/^{/{\"bench\":\"$model\",/" | tee -a "$results"
      "$py" bench/peers/ner_peer.py "${peer_args[@]}" --words "$w" --concurrency "$c" \
        "${measure[@]}" --threads "$threads" \
        | "$py" -c "import json,sys; r=json.loads(sys.stdin.read())['runs'][0]; r.update(side='transformers', bench='$model'); print(json.dumps(r))" \
        | tee -a "$results"
    done
  done
done

"$py" - "$results" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
key = lambda r: (r["bench"], r["words"] if r["side"] == "gist" else r["words"], r["concurrency"])
print("\n| model | words | concurrency | gist docs/s | transformers docs/s | ratio | gist p50 / p95 ms | transformers p50 / p95 ms | gist / transformers peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|")
for g, p in zip(runs[0::2], runs[1::2]):
    ratio = g["docs_per_span_second"] / p["docs_per_span_second"] if p["docs_per_span_second"] else float("nan")
    print(f"| {g['bench']} | {p['words']} | {g['concurrency']} | {g['docs_per_span_second']:.2f} | "
          f"{p['docs_per_span_second']:.2f} | **{ratio:.2f}×** | {g['p50_ms']:.0f} / {g['p95_ms']:.0f} | "
          f"{p['p50_ms']:.0f} / {p['p95_ms']:.0f} | {g['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f} |")
PY
