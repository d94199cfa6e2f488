#!/usr/bin/env bash
# Fails if Sources/RagWire/Generated differs from what Scripts/generate-protos.sh produces.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
dirs=(Sources/RagWire/Generated Clients/c/gen Clients/python/ragd_client/ragd)
for d in "${dirs[@]}"; do mkdir -p "$tmp/before/$d"; cp -r "$d/." "$tmp/before/$d"; done
Scripts/generate-protos.sh >/dev/null
make -s -C Clients/c generate
Clients/python/generate.sh
find Clients -name '*.o' -delete; find Clients -name __pycache__ -prune -exec rm -rf {} +
for d in "${dirs[@]}"; do
  find "$tmp/before/$d" -name '*.o' -delete; find "$tmp/before/$d" -name __pycache__ -prune -exec rm -rf {} +
  if ! diff -r "$tmp/before/$d" "$d"; then
    echo "generated code in $d is stale: run Scripts/generate-protos.sh, make -C Clients/c generate, Clients/python/generate.sh" >&2
    exit 1
  fi
done
echo "generated code is up to date"
