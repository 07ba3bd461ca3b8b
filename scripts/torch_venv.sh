#!/usr/bin/env bash
# Builds a CPU-only Python venv around the PyPI torch 2.4.0 wheel, idempotently:
#   scripts/torch_venv.sh VENV REQUIREMENTS [MODULE...]
# REQUIREMENTS is the complete, exactly pinned dependency closure (installed with --no-deps
# from the wheel cache, no index): torch 2.4.0 plus only the CUDA libraries whose real code
# runs on a CPU-only machine; make_cuda_stubs.py stands in for the other seven (about 2.5 GB
# of nvidia-* wheels a CPU never calls; bench/peers/README.md, "Install", tells why).
# MODULEs are imported as a final check. Two venvs use it: bench/peers/.venv (the benchmark
# peers) and the ONNX exporter scripts/setup.sh builds in the cache (scripts/onnx/).
# Wheels are kept in ${XDG_CACHE_HOME:-$HOME/.cache}/gist/wheels, where scripts/setup.sh
# already holds the 800 MB torch wheel. An unchanged rerun does nothing.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 VENV REQUIREMENTS [MODULE...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$1
req=$2
shift 2
modules=("$@")
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gist"
wheels="$cache/wheels"
python="${PYTHON:-python3}"
name=$(basename "$(dirname "$req")")/$(basename "$req")

die() { echo "torch venv ($name): $*" >&2; exit 1; }
say() { echo "torch venv ($name): $*" >&2; }

command -v "$python" >/dev/null || die "$python not found: apt-get install -y python3 python3-venv"
"$python" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' \
  || die "torch 2.4.0 and onnxruntime 1.32 both have wheels for Python 3.11-3.12; $python is $("$python" --version 2>&1) (set PYTHON=)"
"$python" -m pip --version >/dev/null 2>&1 || die "pip not found for $python: apt-get install -y python3-pip"
command -v cc >/dev/null || die "no C compiler (cc) for the CUDA stubs: apt-get install -y build-essential"
command -v readelf >/dev/null || die "readelf not found: apt-get install -y binutils"

stamp=$( { "$python" --version 2>&1; cat "$req" "$here/make_cuda_stubs.py" "$here/torch_venv.sh"; echo "${modules[*]}"; } \
  | sha256sum | cut -d' ' -f1)
if [ -f "$venv/.torch-venv" ] && [ "$(cat "$venv/.torch-venv")" = "$stamp" ]; then
  say "up to date ($venv)"
  exit 0
fi

mkdir -p "$wheels"
# Every pinned wheel into the cache (a cached file is not downloaded again); binary only,
# no dependency resolution: the requirements file is the complete closure.
say "fetching the pinned wheels into $wheels (the torch wheel is 800 MB when not cached yet)"
"$python" -m pip download --disable-pip-version-check -q --no-deps --only-binary :all: \
  --find-links "$wheels" -d "$wheels" -r "$req" \
  || die "could not download the wheels in $req from PyPI (is the package registry reachable?)"

if [ "$("$venv/bin/python" --version 2>&1)" != "$("$python" --version 2>&1)" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "could not create $venv with $python -m venv: apt-get install -y python3-venv"
fi
rm -f "$venv/.torch-venv"
say "installing $req into $venv (no index, no dependency resolution)"
"$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-index \
  --find-links "$wheels" -r "$req" \
  || die "could not install $req into $venv from $wheels"

torch_lib=$("$venv/bin/python" -c 'import importlib.util as u, os; print(os.path.join(os.path.dirname(u.find_spec("torch").origin), "lib"))') \
  || die "torch is not installed in $venv"
"$venv/bin/python" "$here/make_cuda_stubs.py" "$torch_lib" >&2 \
  || die "could not build the CUDA stand-in libraries (make_cuda_stubs.py)"

# The same libtorch_cpu.so as gist's libtorch (both come out of the same wheel): share the
# 470 MB file as a hard link when scripts/setup.sh has prepared it on this file system.
gist_cpu="$cache/libtorch-2.4.0-cpu/lib/libtorch_cpu.so"
if [ -f "$gist_cpu" ] && ! [ "$gist_cpu" -ef "$torch_lib/libtorch_cpu.so" ] && cmp -s "$gist_cpu" "$torch_lib/libtorch_cpu.so"; then
  ln -f "$gist_cpu" "$torch_lib/libtorch_cpu.so" 2>/dev/null \
    && say "libtorch_cpu.so hard-linked to gist's libtorch (saves 470 MB)" || true
fi

OMP_NUM_THREADS=1 "$venv/bin/python" - "${modules[@]}" <<'PY' || die "the venv does not work (see the lines above)"
import importlib, sys
import torch
assert not torch.cuda.is_available()
assert float(torch.ones(2) @ torch.ones(2)) == 2.0
versions = [f"torch {torch.__version__}"]
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    versions.append(f"{name} {getattr(module, '__version__', '')}".strip())
print("torch venv: " + ", ".join(versions), file=sys.stderr)
PY
echo "$stamp" > "$venv/.torch-venv"
say "ready: $venv/bin/python ($(du -sh "$venv" | cut -f1))"
