# Shared by the benchmark scripts: a release build and a fresh ragd per measurement.
# Source it from the repository root; sets $bin.
# BENCH_BIN=dir: that directory's ragd and ragctl instead (an A/B against another build).
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$BENCH_BIN
else
  swift build -c release --product ragd >/dev/null
  swift build -c release --product ragctl >/dev/null
  bin=$(swift build -c release --show-bin-path)
fi

start_server() {  # dir, extra flags… → sets pid, port
  local dir=$1; shift
  "$bin/ragd" serve --port 0 --data-dir "$dir" --metrics-port off --log-level warning --embedder "${BENCH_EMBEDDER:-hashing}" "$@" >"$dir.out" 2>"$dir.err" &
  pid=$!
  for _ in $(seq "${START_TRIES:-200}"); do  # 50 ms each
    port=$(sed -n 's/^ragd listening on .*:\([0-9]*\)$/\1/p' "$dir.out")
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "ragd did not start: $(cat "$dir.err")" >&2; exit 1
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

# A cluster's scratch directory, certificates and the processes to kill on exit:
# sets work, pids, cluster_tls.
cluster_setup() {
  work=$(mktemp -d)
  pids=()
  trap 'kill ${pids[*]:-} 2>/dev/null || true; rm -rf "$work"' EXIT
  Scripts/make-certs.sh "$work/certs" node client >/dev/null
  local c="$work/certs"
  cluster_tls="--cluster-ca $c/ca.pem --cluster-cert $c/node.pem --cluster-key $c/node.key"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
