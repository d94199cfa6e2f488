#!/usr/bin/env bash
# The replication chaos test for longer than CI runs it, reproducible by seed:
#   Scripts/chaos.sh MINUTES [SEED]
# MINUTES per replication factor (2, then 3); SEED defaults to a random one (printed
# in the verdict line). The binaries are copied first, so building while it runs is safe.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:?usage: Scripts/chaos.sh MINUTES [SEED]}
seed=${2:-$RANDOM}
swift build --build-tests >/dev/null
bin=$(swift build --show-bin-path)
dir=$(mktemp -d /tmp/ragd-chaos-bin.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$bin/RagdPackageTests.xctest" "$bin/ragd" "$dir/"
echo "chaos: $minutes min per replication factor, seed $seed"
cd "$dir"
RAGD_BIN="$dir/ragd" RAGD_CHAOS_MINUTES="$minutes" RAGD_CHAOS_SEED="$seed" \
    ./RagdPackageTests.xctest --testing-library swift-testing --filter ChaosTests 2>&1 | grep -E "chaos verdict|✘|✔ Test|Issue" 
