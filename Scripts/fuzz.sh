#!/usr/bin/env bash
# Fuzzes the frame decoder, the filter parser, the request decoders and the
# chunker with libFuzzer and AddressSanitizer for SECONDS (default 600).
#   Scripts/fuzz.sh [SECONDS]
# Seeds come from Tests/Fuzz/seeds (built from the golden frames); what the
# fuzzer learns is kept in .build-fuzz/corpus; a crash is saved as
# .build-fuzz/crash-* and replayed with: .build/debug/RagFuzz .build-fuzz/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
swift build --scratch-path .build-fuzz --product RagFuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xlinker --export-dynamic-symbol=LLVMFuzzerRunDriver >&2
mkdir -p .build-fuzz/corpus
bin=$(swift build --scratch-path .build-fuzz --show-bin-path)/RagFuzz
# -rss_limit_mb: a request that makes the harness hold more is a finding too.
status=0
"$bin" .build-fuzz/corpus Tests/Fuzz/seeds -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
  -artifact_prefix=.build-fuzz/ -print_final_stats=1 >.build-fuzz/fuzz.log 2>&1 || status=$?
grep -E "^#[0-9]+ +DONE|^stat::(number_of_executed_units|peak_rss_mb|new_units_added)|^==[0-9]+==|^SUMMARY|deadly|crash-" .build-fuzz/fuzz.log || true
echo "fuzz: ${seconds} s, exit status $status (log: .build-fuzz/fuzz.log)"
exit "$status"
