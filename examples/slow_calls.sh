#!/usr/bin/env bash
# The 10,000 slow calls, distributed: a server, two workers, and 10,000
# command jobs of 0.05 s each, submitted with `ferry map` and followed with a
# progress bar. Everything on this machine, on loopback.
# Usage: examples/slow_calls.sh [path/to/ferry] [jobs] [slots per worker]
set -euo pipefail
ferry=${1:-build/release/ferry}
jobs=${2:-10000}
slots=${3:-32}
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
export FERRY_TOKEN=slow-calls
"$ferry" server --listen 127.0.0.1:0 --db "$dir/ferry.db" --address-file "$dir/address" 2> "$dir/server.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s $dir/address ]] && break; sleep 0.05; done
export FERRY_SERVER=$(cat "$dir/address")
for worker in 1 2; do
  "$ferry" worker --slots "$slots" --id "worker-$worker" 2> "$dir/worker-$worker.log" & pids+=($!)
done
# Each job is `sleep 0.05 0`: sleep adds up its arguments, so the appended input is harmless.
awk -v n="$jobs" 'BEGIN { for (i = 0; i < n; i++) print 0 }' > "$dir/inputs"
start=$(date +%s.%N)
"$ferry" map --wait --bar sleep 0.05 :::: "$dir/inputs"
seconds=$(echo "$(date +%s.%N) - $start" | bc -l)
printf '%d jobs of 0.05 s on 2 workers x %d slots: %.1f s (ideal %.1f s)\n' "$jobs" "$slots" \
  "$seconds" "$(echo "$jobs * 0.05 / (2 * $slots)" | bc -l)"
