#!/usr/bin/env bash
# Prepare the build context of deploy/image/Containerfile:
#   OUT/bin/gist      the gist binary (stripped)
#   OUT/lib/          the shared libraries it needs that a Debian base lacks: every library
#                     `ldd` resolves outside the system folders (libtorch's, in a build
#                     with the libtorch runtime), the ONNX Runtime library when models.toml
#                     serves a model on it (gist loads it at run time, so ldd cannot see
#                     it), plus any --lib
#   OUT/models/       models.toml and the model folders it names
#
# Usage: deploy/image/stage.sh [--binary FILE] [--models DIR] [--lib FILE]... OUT
#   --binary  default: $CARGO_TARGET_DIR/release/gist, else target/release/gist
#   --models  default: models (prepared by `make setup`)
# OUT is replaced. Build the binary first: `make build-onnx` (the image ships the ONNX-only build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
die() { echo "gist stage: $*" >&2; exit 1; }

binary="${CARGO_TARGET_DIR:-$root/target}/release/gist"
models="$root/models"
extra_libs=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --lib) extra_libs+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$out" ] || die "one OUT folder only (got $out and $1)"; out="$1"; shift ;;
  esac
done
[ -n "$out" ] || die "usage: deploy/image/stage.sh [--binary FILE] [--models DIR] [--lib FILE]... OUT"
[ -x "$binary" ] || die "no gist binary at $binary: build it first (make build-onnx), or pass --binary"
[ -f "$models/models.toml" ] || die "no models.toml in $models: run make setup, or pass --models"
command -v ldd >/dev/null || die "ldd not found (Debian: libc-bin)"

rm -rf "$out.tmp" && mkdir -p "$out.tmp/bin" "$out.tmp/lib" "$out.tmp/models"
cp "$binary" "$out.tmp/bin/gist"
# Symbols are no use in a container and make up a good part of the binary.
if command -v strip >/dev/null; then strip --strip-unneeded "$out.tmp/bin/gist"; fi

# Libraries: what the dynamic linker resolves, minus what every Debian base has (glibc,
# libstdc++, libgcc). Copied under their soname, following symlinks.
ldd "$binary" | awk '/=> \// { print $1, $3 }' | while read -r soname path; do
  case "$path" in
    /lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) continue ;;
  esac
  cp -L "$path" "$out.tmp/lib/$soname"
done
if ldd "$binary" | grep -q 'not found'; then
  die "ldd cannot resolve every library of $binary: $(ldd "$binary" | grep 'not found' | tr -s ' \t' ' ')"
fi
# ONNX Runtime, loaded with dlopen from beside the binary (../lib): the library that
# `make setup` prepares, under the name gist looks for.
if grep -Eq '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"onnx"' "$models/models.toml"; then
  ort="$root/onnxruntime/lib/libonnxruntime.so"
  [ -e "$ort" ] || die "models.toml serves models on ONNX Runtime, but $ort is missing: run make setup"
  cp -L "$ort" "$out.tmp/lib/libonnxruntime.so"
fi
for lib in "${extra_libs[@]}"; do
  [ -f "$lib" ] || die "--lib $lib: no such file"
  cp -L "$lib" "$out.tmp/lib/"
done

# Models: models.toml and the folders named by its `path` keys (other folders a developer
# pulled stay out), without set-up stamps, and with only the weights the entry's runtime
# reads: an ONNX entry keeps its one .onnx file (model.onnx for fp32, model.int8.onnx for
# int8) and the embedding tables both point into (model.onnx.data), and drops the torch
# weights; a libtorch entry drops the ONNX files.
python3 - "$models" "$out.tmp/models" <<'PY'
import fnmatch, shutil, sys, tomllib
from pathlib import Path
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
manifest = tomllib.loads((src / "models.toml").read_text())
shutil.copy2(src / "models.toml", dest / "models.toml")
TORCH = ["*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "rust_model.ot"]
for section, spec in manifest.items():
    if not isinstance(spec, dict) or "path" not in spec:
        continue
    folder = src / spec["path"]
    if not folder.is_dir():
        sys.exit(f"gist stage: models.toml [{section}] names {folder}, which is not a folder")
    if spec.get("runtime", "libtorch") == "onnx":
        keep = "model.int8.onnx" if spec.get("precision", "fp32") == "int8" else "model.onnx"
        unused = TORCH + [f for f in ("model.onnx", "model.int8.onnx") if f != keep]
    else:
        unused = ["*.onnx", "*.onnx.data"]
    def ignore(_dir, names):
        return [n for n in names if n.startswith(".")
                or any(fnmatch.fnmatch(n, pattern) for pattern in unused)]
    shutil.copytree(folder, dest / spec["path"], symlinks=False, ignore=ignore)
PY

rm -rf "$out" && mv "$out.tmp" "$out"
echo "gist stage: $out ready ($(du -sh "$out" | cut -f1): $(ls "$out/lib" | wc -l) libraries, models: $(ls "$out/models" | tr '\n' ' '))" >&2
