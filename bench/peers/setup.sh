#!/usr/bin/env bash
# Builds bench/peers/.venv, the Python peers' environment, idempotently (README.md, "Install"):
#   torch 2.4.0 from PyPI (the libtorch gist links) + transformers 4.44.2, CPU only,
#   without the ~2.5 GB of nvidia-* CUDA wheels the torch wheel asks for.
# Wheels are kept in ${XDG_CACHE_HOME:-$HOME/.cache}/gist/wheels (shared with scripts/setup.sh,
# which already holds the 800 MB torch wheel there). An unchanged rerun does nothing.
#   bench/peers/setup.sh            PYTHON=python3.11 bench/peers/setup.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv="$here/.venv"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/gist/wheels"
python="${PYTHON:-python3}"
req="$here/requirements.txt"

die() { echo "bench/peers setup: $*" >&2; exit 1; }
say() { echo "bench/peers setup: $*" >&2; }

command -v "$python" >/dev/null || die "$python not found: apt-get install -y python3 python3-venv"
"$python" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 12))' \
  || die "torch 2.4.0 has wheels for Python 3.8-3.12 only; $python is $("$python" --version 2>&1) (set PYTHON=)"
"$python" -m pip --version >/dev/null 2>&1 || die "pip not found for $python: apt-get install -y python3-pip"
command -v cc >/dev/null || die "no C compiler (cc) for the CUDA stubs: apt-get install -y build-essential"
command -v readelf >/dev/null || die "readelf not found: apt-get install -y binutils"

stamp=$( { "$python" --version 2>&1; cat "$req" "$here/make_cuda_stubs.py" "$0"; } | sha256sum | cut -d' ' -f1)
if [ -f "$venv/.peers-setup" ] && [ "$(cat "$venv/.peers-setup")" = "$stamp" ]; then
  say "up to date ($venv)"
  exit 0
fi

mkdir -p "$wheels"
# Every pinned wheel into the cache (a cached file is not downloaded again); binary only,
# no dependency resolution: requirements.txt is the complete closure.
say "fetching the pinned wheels into $wheels (the torch wheel is 800 MB when not cached yet)"
"$python" -m pip download --disable-pip-version-check -q --no-deps --only-binary :all: \
  --find-links "$wheels" -d "$wheels" -r "$req" \
  || die "could not download the wheels in requirements.txt from PyPI (is the package registry reachable?)"

if [ "$("$venv/bin/python" --version 2>&1)" != "$("$python" --version 2>&1)" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "could not create $venv with $python -m venv: apt-get install -y python3-venv"
fi
rm -f "$venv/.peers-setup"
say "installing requirements.txt into $venv (no index, no dependency resolution)"
"$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-index \
  --find-links "$wheels" -r "$req" \
  || die "could not install requirements.txt into $venv from $wheels"

torch_lib=$("$venv/bin/python" -c 'import importlib.util as u, os; print(os.path.join(os.path.dirname(u.find_spec("torch").origin), "lib"))') \
  || die "torch is not installed in $venv"
"$venv/bin/python" "$here/make_cuda_stubs.py" "$torch_lib" >&2 \
  || die "could not build the CUDA stand-in libraries (make_cuda_stubs.py)"

# The same libtorch_cpu.so as gist's libtorch (both come out of the same wheel): share the
# 470 MB file as a hard link when scripts/setup.sh has prepared it on this file system.
gist_cpu="${XDG_CACHE_HOME:-$HOME/.cache}/gist/libtorch-2.4.0-cpu/lib/libtorch_cpu.so"
if [ -f "$gist_cpu" ] && ! [ "$gist_cpu" -ef "$torch_lib/libtorch_cpu.so" ] && cmp -s "$gist_cpu" "$torch_lib/libtorch_cpu.so"; then
  ln -f "$gist_cpu" "$torch_lib/libtorch_cpu.so" 2>/dev/null \
    && say "libtorch_cpu.so hard-linked to gist's libtorch (saves 470 MB)" || true
fi

OMP_NUM_THREADS=1 "$venv/bin/python" - <<'PY' || die "the venv's torch/transformers do not work (see the lines above)"
import torch, transformers, tokenizers, sentencex, matplotlib
assert not torch.cuda.is_available()
assert float(torch.ones(2) @ torch.ones(2)) == 2.0
print(f"bench/peers setup: torch {torch.__version__} transformers {transformers.__version__}"
      f" tokenizers {tokenizers.__version__} threads {torch.get_num_threads()}")
PY
echo "$stamp" > "$venv/.peers-setup"
say "ready: $venv/bin/python ($(du -sh "$venv" | cut -f1))"
