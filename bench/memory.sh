#!/usr/bin/env bash
# The server's memory with many queued jobs: submits $JOBS (default 1,000,000)
# command jobs in batches of 10,000, then reads the server's resident memory.
# Usage: bench/memory.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
jobs=${JOBS:-1000000}
source scripts/local_server.sh
start_local_server "$build/ferry"
server=$server_pid
url=$FERRY_SERVER
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
idle=$(rss)
python3 - "$dir/batch.json" <<'PY'
import json, sys
job = {"command": {"argv": ["./create_flow.sh", "17"]}, "retries": 2, "timeout": 60}
json.dump({"jobs": [job] * 10000}, open(sys.argv[1], "w"))
PY
start=$(date +%s.%N)
for ((i = 0; i < jobs / 10000; i++)); do
  curl -sf -o /dev/null --data-binary @"$dir/batch.json" -H 'Content-Type: application/json' "$url/v1/jobs"
done
seconds=$(echo "$(date +%s.%N) - $start" | bc -l)
full=$(rss)
printf 'submitted %d jobs in %.1f s (%.0f jobs/s, durable)\n' "$jobs" "$seconds" "$(echo "$jobs / $seconds" | bc -l)"
printf 'server RSS: %.0f MB idle, %.0f MB holding %d queued jobs (%.0f bytes per job)\n' \
  "$(echo "$idle / 1024" | bc -l)" "$(echo "$full / 1024" | bc -l)" "$jobs" \
  "$(echo "($full - $idle) * 1024 / $jobs" | bc -l)"
echo "database: $(du -h "$dir/ferry.db" | cut -f1)"
