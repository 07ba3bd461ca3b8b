#!/usr/bin/env bash
# Create (idempotently) the Python venv used by train_ner.py.
#   training/setup_venv.sh            -> creates/updates ${XDG_CACHE_HOME:-$HOME/.cache}/gist/train-venv
# Re-running is a no-op when requirements.txt has not changed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/gist"
VENV="${GIST_TRAIN_VENV:-$CACHE/train-venv}"
WHEELS="$CACHE/wheels"            # torch-2.4.0 wheel may already be cached here
REQ="$HERE/requirements.txt"
PY="${PYTHON:-python3}"

stamp="$VENV/.gist-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "train venv up to date: $VENV"
  exit 0
fi

mkdir -p "$CACHE"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade --quiet pip
find_links=()
[[ -d "$WHEELS" ]] && find_links=(--find-links "$WHEELS")
"$VENV/bin/python" -m pip install "${find_links[@]}" -r "$REQ"
"$VENV/bin/python" - <<'PY'
import torch, transformers, seqeval, safetensors
print("torch", torch.__version__, "transformers", transformers.__version__,
      "safetensors", safetensors.__version__)
PY
echo "$want" > "$stamp"
echo "train venv ready: $VENV"
