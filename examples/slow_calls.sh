#!/usr/bin/env bash
# The 10,000 slow calls, distributed: a server, two workers, and 10,000
# command jobs of 0.05 s each, submitted with `ferry map` and followed with a
# progress bar. Everything on this machine, on loopback.
# Usage: examples/slow_calls.sh [path/to/ferry] [jobs] [slots per worker]
set -euo pipefail
ferry=${1:-build/release/ferry}
jobs=${2:-10000}
slots=${3:-32}
source "$(dirname "$0")/../scripts/local_server.sh"
export FERRY_TOKEN=slow-calls
start_local_server "$ferry"
for worker in 1 2; do background "$ferry" worker --slots "$slots" --id "worker-$worker"; done
# Each job is `sleep 0.05 0`: sleep adds up its arguments, so the appended input is harmless.
awk -v n="$jobs" 'BEGIN { for (i = 0; i < n; i++) print 0 }' > "$dir/inputs"
start=$(date +%s.%N)
"$ferry" map --wait --bar sleep 0.05 :::: "$dir/inputs"
seconds=$(echo "$(date +%s.%N) - $start" | bc -l)
printf '%d jobs of 0.05 s on 2 workers x %d slots: %.1f s (ideal %.1f s)\n' "$jobs" "$slots" \
  "$seconds" "$(echo "$jobs * 0.05 / (2 * $slots)" | bc -l)"
