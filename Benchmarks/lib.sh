# Shared by the benchmark scripts: a release build and a fresh ragd per measurement.
# Source it from the repository root; sets $bin.
swift build -c release --product ragd >/dev/null
swift build -c release --product ragctl >/dev/null
bin=$(swift build -c release --show-bin-path)

start_server() {  # dir, extra flags… → sets pid, port
  local dir=$1; shift
  "$bin/ragd" serve --port 0 --data-dir "$dir" --metrics-port off --log-level warning "$@" >"$dir.out" 2>"$dir.err" &
  pid=$!
  for _ in $(seq 200); do
    port=$(sed -n 's/^ragd listening on .*:\([0-9]*\)$/\1/p' "$dir.out")
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "ragd did not start: $(cat "$dir.err")" >&2; exit 1
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
