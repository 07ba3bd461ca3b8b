#!/usr/bin/env bash
# Prepares one model folder for gist's ONNX Runtime engine, cached by checksum:
#   scripts/onnx/prepare.sh MODEL_DIR ner|embed [export.py options, e.g. --lower-case false]
# puts model.onnx, model.int8.onnx, model.onnx.data (their embedding tables) and export.json into MODEL_DIR (and tokenizer.json when
# the folder has none). The key is the SHA-256 of the folder's input files, the exporter,
# its pins and the options; a known key links the files from
# ${XDG_CACHE_HOME:-$HOME/.cache}/gist/onnx/KEY (no Python at all), an unknown one builds
# the exporter venv once (scripts/torch_venv.sh, about 2 minutes) and exports (about 30 s
# per model). Used by scripts/setup.sh for the default models and by
# `gist models import --runtime onnx`.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 MODEL_DIR ner|embed [export.py options]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(cd "$1" && pwd)
task=$2
shift 2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gist"
venv="$cache/onnx-exporter"

die() { echo "gist onnx: $*" >&2; exit 1; }
say() { echo "gist onnx: $*" >&2; }

case "$task" in ner|embed) ;; *) die "task must be ner or embed, not $task" ;; esac
[ -f "$dir/config.json" ] || die "$dir has no config.json"

# The inputs: every file export.py reads from the folder (tokenizer.json only as an input
# when the folder brought its own), the exporter and its pins, the task and the options.
inputs=()
for f in config.json model.safetensors pytorch_model.bin vocab.txt vocab.json merges.txt \
         spiece.model sentencepiece.bpe.model tokenizer_config.json special_tokens_map.json \
         added_tokens.json; do
  [ -f "$dir/$f" ] && inputs+=("$dir/$f")
done
if [ -f "$dir/tokenizer.json" ] && ! [ -f "$dir/.tokenizer-from-export" ]; then
  inputs+=("$dir/tokenizer.json")
fi
key=$( { sha256sum "${inputs[@]}" | cut -d' ' -f1; sha256sum "$here/export.py" "$here/requirements.txt" | cut -d' ' -f1;
         echo "$task $*"; } | sha256sum | cut -c1-32)
out="$cache/onnx/$key"

mkdir -p "$cache/onnx"
# One export per key at a time (tests export the same tiny models in parallel); the venv
# build is guarded the same way.
exec 9>"$cache/onnx/.lock"
command -v flock >/dev/null && flock 9
if [ ! -f "$out/.complete" ]; then
  bash "$here/../torch_venv.sh" "$venv" "$here/requirements.txt" transformers onnx onnxruntime >&2
  say "exporting $(basename "$dir") ($task) to ONNX fp32 and int8"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$venv/bin/python" "$here/export.py" --model "$dir" \
    --task "$task" --out "$out.tmp" --int8 --check "$@" \
    || die "exporting $dir failed (see above)"
  touch "$out.tmp/.complete"
  rm -rf "$out" && mv "$out.tmp" "$out"
fi

# Hard links where the cache and the folder share a file system, copies otherwise.
for f in model.onnx model.int8.onnx model.onnx.data export.json; do
  ln -f "$out/$f" "$dir/$f" 2>/dev/null || cp -f "$out/$f" "$dir/$f"
done
if [ ! -f "$dir/tokenizer.json" ] || [ -f "$dir/.tokenizer-from-export" ]; then
  cp -f "$out/tokenizer.json" "$dir/tokenizer.json"
  touch "$dir/.tokenizer-from-export"
fi
echo "$key" > "$dir/.onnx-key"
