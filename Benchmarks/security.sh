#!/usr/bin/env bash
# What TLS and the API-key check cost per call: p50/p99 Query latency on one
# connection (concurrency 1) against a fresh release ragd in each configuration,
# measured in the same run: plain, plain + key, TLS, TLS + key, mutual TLS + key.
# Two measurements per configuration, interleaved, so drift hits all alike.
# Usage: Benchmarks/security.sh [QUERIES=3000]
set -euo pipefail
cd "$(dirname "$0")/.."
queries=${1:-3000}
. Benchmarks/lib.sh
work=$(mktemp -d)
trap 'kill ${pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
Scripts/make-certs.sh "$work/certs" node client

run() {  # name, key?, tls flags for ragd, tls flags for ragctl
  local name=$1 key=$2 sflags=$3 cflags=$4 dir="$work/$1-$RANDOM" token=""
  mkdir -p "$dir"
  [ "$key" = yes ] && token=$("$bin/ragd" keys create --data-dir "$dir" --role admin --name bench 2>/dev/null)
  # shellcheck disable=SC2086
  start_server "$dir" $sflags
  # shellcheck disable=SC2086
  local misses cached
  misses=$(RAGD_API_KEY=$token "$bin/ragctl" bench --server "127.0.0.1:$port" $cflags --docs 1000 --queries "$queries" \
    --concurrency 1 --mode keyword | sed -n 's/.*p50 \([0-9.]*\) ms, p95 [0-9.]* ms, p99 \([0-9.]*\) ms.*/\1 \2/p')
  # shellcheck disable=SC2086
  cached=$(RAGD_API_KEY=$token "$bin/ragctl" bench --server "127.0.0.1:$port" $cflags --collection warm --docs 200 --queries "$queries" \
    --concurrency 1 --mode keyword --cache | sed -n 's/^second pass (cached): p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1 \2/p')
  stop_server
  printf "%-16s query p50/p99 %-16s cached-answer p50/p99 %s\n" "$name" "$(echo "$misses" | tr ' ' /) ms" "$(echo "$cached" | tr ' ' /) ms"
}

c="$work/certs"
tls="--tls-cert $c/node.pem --tls-key $c/node.key"
echo "p50/p99 of $queries keyword queries (k=10) on one connection; cached-answer = the same questions again (RPC + cache lookup only)"
for round in 1 2; do
  run plain no "" ""
  run plain+key yes "" ""
  run tls no "$tls" "--tls-ca $c/ca.pem"
  run tls+key yes "$tls" "--tls-ca $c/ca.pem"
  run mtls+key yes "$tls --tls-client-ca $c/ca.pem" "--tls-ca $c/ca.pem --tls-cert $c/client.pem --tls-key $c/client.key"
done
