#!/usr/bin/env bash
# Compare int8 quantization settings of a prepared model folder through gist's own pipeline
# (docs/onnx.md, "int8"): each VARIANT is a set of export.py quantization options; the int8
# file it gives is scored with `gist eval ner` (--task ner, on a CoNLL file) or
# `gist eval summarize` (--task embed, on a JSONL file), beside fp32.
#   scripts/onnx/compare_int8.sh ner models/conll03-minilm-ner ../shared/data/conll2003/dev.txt \
#       'naive=--no-per-channel --quantize-activation-matmuls --keep-fp32 ^$' \
#       'default='
# Results: one line per variant on stdout, JSON reports in ${OUT:-/tmp/gist-int8}/.
# SKIP_FP32=1 leaves out the fp32 reference run.
set -euo pipefail

[ $# -ge 4 ] || { echo "usage: $0 ner|embed MODEL_DIR DATA 'NAME=OPTIONS'..." >&2; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
task=$1
model=$(cd "$2" && pwd)
data=$3
shift 3
out=${OUT:-/tmp/gist-int8}
gist=${GIST:-${CARGO_TARGET_DIR:-$root/target}/release/gist}
python="${XDG_CACHE_HOME:-$HOME/.cache}/gist/onnx-exporter/bin/python"
threads=${THREADS:-2}
section=$([ "$task" = ner ] && echo ner || echo encoder)
mkdir -p "$out"

# models folder whose [section] is DIR at PRECISION, through ONNX Runtime
models_for() {
  local dir=$1 precision=$2 m="$out/models-$3"
  mkdir -p "$m"
  printf '[%s]\nname = "%s"\npath = "%s"\nruntime = "onnx"\nprecision = "%s"\n' \
    "$section" "$(basename "$model")" "$dir" "$precision" > "$m/models.toml"
  echo "$m"
}

score() {  # NAME MODELS
  local json="$out/$1.json" started=$SECONDS
  if [ "$task" = ner ]; then
    "$gist" eval ner "$data" --engine onnx --threads "$threads" --models "$2" --json "$json" >/dev/null
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); m=r["micro"]; print("%s: F1 %.2f P %.2f R %.2f (%s s)" % (sys.argv[2], 100*m["f1"], 100*m["precision"], 100*m["recall"], sys.argv[3]))' "$json" "$1" "$((SECONDS - started))"
  else
    "$gist" eval summarize "$data" --engine onnx --threads "$threads" --models "$2" --json "$json" >/dev/null
    python3 -c 'import json,sys; g=json.load(open(sys.argv[1]))["gist"]; print("%s: ROUGE-1 %.2f ROUGE-2 %.2f ROUGE-Lsum %.2f (%s s)" % (sys.argv[2], g["rouge1"], g["rouge2"], g["rouge_lsum"], sys.argv[3]))' "$json" "$1" "$((SECONDS - started))"
  fi
}

[ -n "${SKIP_FP32:-}" ] || score fp32 "$(models_for "$model" fp32 fp32)"
for variant in "$@"; do
  name=${variant%%=*}
  options=${variant#*=}
  dir="$out/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "$model"/*; do
    case "$(basename "$f")" in model.int8.onnx|export.json) ;; *) ln -s "$f" "$dir/" ;; esac
  done
  [ -d "$model/1_Pooling" ] && { rm -f "$dir/1_Pooling"; ln -s "$model/1_Pooling" "$dir/1_Pooling"; }
  # shellcheck disable=SC2086
  "$python" "$root/scripts/onnx/export.py" --model "$model" --task "$task" --out "$dir" \
    --quantize-only --int8 $options 2>/dev/null
  size=$(du -m "$dir/model.int8.onnx" | cut -f1)
  echo -n "[$name: ${size} MB, $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["int8"]; print(r["quantized"], "MatMuls int8,", len(r["left_fp32"]), "fp32")' "$dir/export.int8.json")] "
  score "$name" "$(models_for "$dir" int8 "$name")"
done
