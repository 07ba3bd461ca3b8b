#!/usr/bin/env bash
# Builds bench/peers/.venv, the Python peers' environment, idempotently (README.md, "Install"):
#   torch 2.4.0 from PyPI (the libtorch gist links) + transformers 4.44.2 + onnxruntime 1.32.0
#   (the library gist's ONNX engine loads), CPU only, without the ~2.5 GB of nvidia-* CUDA
#   wheels the torch wheel asks for. The recipe is scripts/torch_venv.sh, shared with the
#   ONNX exporter that scripts/setup.sh builds.
#   bench/peers/setup.sh            PYTHON=python3.11 bench/peers/setup.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$here/../../scripts/torch_venv.sh" "$here/.venv" "$here/requirements.txt" \
  transformers tokenizers onnxruntime sentencex matplotlib
