#!/usr/bin/env bash
# The clients the HTTP/gRPC-Web tests drive (tests/it/http_tools.rs), installed from their
# registries with their ordinary clients, idempotently:
#   tests/schemathesis/requirements.txt   schemathesis (PyPI), in a venv kept in the per-user
#                                          cache like scripts/deploy-venv.sh's; linked at
#                                          ./.tools/api-venv
#   tests/node/package.json + lock        @grpc/grpc-js, @grpc/proto-loader,
#                                          @improbable-eng/grpc-web (+ its Node transport),
#                                          protobufjs (npm), `npm ci` into tests/node/node_modules
# Both are git-ignored. A rerun with the same pins costs nothing.
#
# Usage: scripts/api-clients.sh     (make test runs it)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gist"
python="${PYTHON:-python3}"
die() { echo "gist api-clients: $*" >&2; exit 1; }

requirements="$root/tests/schemathesis/requirements.txt"
stamp=$( { "$python" --version 2>&1; cat "$requirements"; } | sha256sum | cut -c1-16)
venv="$cache/venvs/api-$stamp"
if [ ! -f "$venv/.complete" ]; then
  echo "gist api-clients: preparing $venv (schemathesis; once)" >&2
  mkdir -p "$cache/venvs"
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "cannot create a venv with $python -m venv: apt-get install -y python3-venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements" \
    || die "cannot install $requirements (is the package registry reachable?)"
  touch "$venv/.complete"
fi
mkdir -p "$root/.tools"
ln -sfn "$venv" "$root/.tools/api-venv"

node_dir="$root/tests/node"
command -v npm >/dev/null || die "npm is missing: run scripts/test-tools.sh (apt-get install -y nodejs npm)"
# The lock file's hash marks a finished install, so a changed lock installs again.
lock=$(sha256sum "$node_dir/package-lock.json" | cut -c1-16)
if [ "$(cat "$node_dir/node_modules/.gist-lock" 2>/dev/null)" != "$lock" ]; then
  echo "gist api-clients: npm ci in tests/node" >&2
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed in $node_dir (is the npm registry reachable?)"
  echo "$lock" > "$node_dir/node_modules/.gist-lock"
fi
echo "gist api-clients: ready (.tools/api-venv, tests/node/node_modules)" >&2
