#!/usr/bin/env bash
# System tools that some tests need beyond scripts/setup.sh, installed from Debian's
# packages, idempotently: only what is missing is installed, so a rerun costs nothing.
# Needs root (apt-get); CI runs it from .ci/run before `make test`.
#
#   tool          package       used by
#   podman        podman        tests/it/image.rs: build the OCI image (COPY-only steps)
#   umoci         umoci         tests/it/image.rs: unpack the saved image into a rootfs
#   debootstrap   debootstrap   deploy/image/base.sh: the bookworm minbase base image (cached)
#   haproxy       haproxy       tests/it/multihost.rs: the HTTP/2 gRPC balancer
#   ip            iproute2      tests/it/multihost.rs, tests/it/image.rs: network namespaces
#   unshare       util-linux    tests/it/image.rs: run the image's entrypoint in its own root
#   java          openjdk-17-jre-headless   clients/spark: PySpark's JVM
#   curl          curl          tests/it/http.rs: every HTTP endpoint and the README's examples
#   prometheus    prometheus    tests/it/http_tools.rs: a real scrape of GET /metrics and PromQL
#   node, npm     nodejs, npm   tests/it/http_tools.rs: the Node.js gRPC and gRPC-Web clients
#                               (the machine image has Node.js 20 + npm 11; Debian's 18 + 9 do too)
#   kubectl       not installed here: bookworm's kubernetes-client (1.20) is too old for
#                 current kustomize; the machine image has a current kubectl, and
#                 deploy/kubernetes/check.py stops with a clear message without one
#
# Other helpers append their tools to the `need` list below: "COMMAND PACKAGE".
set -euo pipefail

need=(
  "podman podman"
  "umoci umoci"
  "debootstrap debootstrap"
  "haproxy haproxy"
  "ip iproute2"
  "unshare util-linux"
  "java openjdk-17-jre-headless"
  "curl curl"
  "prometheus prometheus"
  "node nodejs"
  "npm npm"
)

missing=()
for entry in "${need[@]}"; do
  read -r command package <<<"$entry"
  # haproxy and debootstrap live in /usr/sbin, which a non-login PATH may lack.
  if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command" ]; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "gist test-tools: all present" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "gist test-tools: missing ${missing[*]}: run as root (apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "gist test-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: podman's recommends (rootless helpers, overlay tools) are not
# needed to build and save an image as root with the vfs driver (deploy/image/build-oci.sh).
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "gist test-tools: installed ${missing[*]}" >&2
