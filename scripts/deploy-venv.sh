#!/usr/bin/env bash
# The Python tools of the deployment tests, in one venv kept in the per-user cache:
#   clients/spark/requirements.txt        PySpark, pyarrow and the Python client's pins
#   deploy/kubernetes/requirements.txt    kubernetes-validate (offline schema checks)
# The venv lives in ${XDG_CACHE_HOME:-$HOME/.cache}/gist/venvs/deploy-<hash of the pins
# and the Python version>, so fresh clones (CI) reuse it, and ./.tools/deploy-venv links
# to it. Idempotent: a rerun with the same pins costs nothing. PySpark's package is about
# 450 MB; pip keeps its download in its own cache (~/.cache/pip).
#
# Usage: scripts/deploy-venv.sh     (make test runs it)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gist"
python="${PYTHON:-python3}"
die() { echo "gist deploy-venv: $*" >&2; exit 1; }

requirements=("$root/clients/spark/requirements.txt" "$root/deploy/kubernetes/requirements.txt")
stamp=$( { "$python" --version 2>&1; cat "${requirements[@]}" "$root/clients/python/requirements.txt"; } \
  | sha256sum | cut -c1-16)
venv="$cache/venvs/deploy-$stamp"
link="$root/.tools/deploy-venv"

if [ ! -f "$venv/.complete" ]; then
  echo "gist deploy-venv: preparing $venv (PySpark, pyarrow, kubernetes-validate; once)" >&2
  mkdir -p "$cache/venvs"
  # Built under its final name (a venv's scripts record their path); .complete marks a
  # finished one, so an interrupted build is redone.
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "cannot create a venv with $python -m venv: apt-get install -y python3-venv"
  args=()
  for r in "${requirements[@]}"; do args+=(-r "$r"); done
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "${args[@]}" \
    || die "cannot install ${requirements[*]} (is the package registry reachable?)"
  touch "$venv/.complete"
fi
mkdir -p "$root/.tools"
ln -sfn "$venv" "$link"
echo "gist deploy-venv: ready ($link)" >&2
