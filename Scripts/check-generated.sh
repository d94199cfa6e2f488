#!/usr/bin/env bash
# Fails if Sources/RagWire/Generated differs from what Scripts/generate-protos.sh produces.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
cp -r Sources/RagWire/Generated "$tmp/before"
Scripts/generate-protos.sh >/dev/null
if ! diff -r "$tmp/before" Sources/RagWire/Generated; then
  echo "generated code is stale: run Scripts/generate-protos.sh and commit the result" >&2
  exit 1
fi
echo "generated code is up to date"
