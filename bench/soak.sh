#!/usr/bin/env bash
# A server left running: one server and 2 worker processes, $JOBS no-op calls
# (default 10,000,000) submitted in batches of 5,000 while earlier batches
# run, with --keep-finished short enough ($KEEP, default 1s) that retention
# removes ended jobs all along: from the first million on, so that the
# millions compare like for like. Prints, per million: throughput, the server's
# peak RSS, the database's size (with its journal) and the p99 submit
# latency; then the server's RSS once the queue is empty.
# Usage: bench/soak.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
jobs=${JOBS:-10000000}
keep=${KEEP:-1s}
[[ -x $build/ferry && -x $build/bench_server ]] || { echo "bench: build first" >&2; exit 2; }

source scripts/local_server.sh
export FERRY_TOKEN=bench
start_local_server "$build/ferry" --keep-finished "$keep"
for i in 1 2; do background "$build/bench_server" worker 2; done

echo "machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg); database on $(df --output=fstype "$dir" | tail -1)"
echo "$jobs no-op calls, batches of 5000, 2 worker processes of 2 threads, --keep-finished $keep"
start=$(date +%s)
"$build/bench_server" soak "$jobs" 5000 "$server_pid" "$dir/ferry.db"
echo "all done in $(( $(date +%s) - start )) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 2
echo "server RSS with an empty queue: $(awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$server_pid/status")"
curl -s -H "Authorization: Bearer $FERRY_TOKEN" "$FERRY_SERVER/v1/stats"; echo
