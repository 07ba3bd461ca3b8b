#!/usr/bin/env bash
# A trained NER model as gist serves it, to score it with `gist eval ner` before shipping:
#   training/candidate.sh training/out/RUN [DEST]     (DEST: training/out/RUN-gist)
# DEST gets a model folder built from the run's delta exactly as `make setup` builds the
# shipped one (scripts/merge_ner.py over the base encoder, then scripts/onnx/prepare.sh:
# model.onnx and model.int8.onnx), and a models.toml serving it at int8 beside the default
# encoder. Then:
#   ./target/release/gist eval ner ../shared/data/conll2003/dev.txt --models DEST
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run=$(cd "$1" && pwd)
dest=${2:-$run-gist}
name=$(basename "$run")
encoder="$root/models/all-MiniLM-L6-v2"
[ -f "$run/delta.safetensors" ] || { echo "$run has no delta.safetensors (train_ner.py writes it)" >&2; exit 1; }
[ -f "$encoder/model.safetensors" ] || { echo "run make setup first: $encoder is missing" >&2; exit 1; }
mkdir -p "$dest/$name"
cp "$run/config.json" "$run/tokenizer_config.json" "$encoder/vocab.txt" "$dest/$name"/
python3 "$root/scripts/merge_ner.py" --delta "$run/delta.safetensors" \
  --base "$encoder/model.safetensors" --out "$dest/$name/model.safetensors"
bash "$root/scripts/onnx/prepare.sh" "$dest/$name" ner
cat > "$dest/models.toml" <<TOML
[encoder]
name = "all-MiniLM-L6-v2"
path = "$encoder"
runtime = "onnx"
precision = "int8"

[ner]
name = "$name"
path = "$name"
runtime = "onnx"
precision = "${PRECISION:-int8}"
TOML
echo "candidate ready: $dest (gist eval ner … --models $dest)"
