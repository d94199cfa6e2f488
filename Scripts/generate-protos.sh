#!/usr/bin/env bash
# Regenerates Sources/RagWire/Generated/ from Protos/.
# protoc comes from Debian's protobuf-compiler; protoc-gen-swift is built from the
# swift-protobuf package this project already depends on, so its version always
# matches the SwiftProtobuf runtime we link.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
fi
swift build --product protoc-gen-swift >/dev/null
plugin="$(swift build --show-bin-path)/protoc-gen-swift"
out=Sources/RagWire/Generated
rm -f "$out"/*.pb.swift
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_out="$out" --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath \
  -I Protos Protos/ragd/v1/*.proto
echo "generated: $(ls "$out")"
