#!/usr/bin/env bash
# The durable server under load: 20,000 no-op call jobs through `ferry server`
# (a real SQLite file) and 2 worker processes on loopback; then the latency of
# one call on an idle server. Peers (Python managers, Celery, Dask,
# beanstalkd) are not measured yet.
# Usage: bench/distributed.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
jobs=${JOBS:-20000}
[[ -x $build/ferry && -x $build/bench_server ]] || { echo "bench: build first" >&2; exit 2; }

source scripts/local_server.sh
export FERRY_TOKEN=bench
start_local_server "$build/ferry"
for i in 1 2; do background "$build/bench_server" worker 2; done

echo "machine: $(nproc) cores, $(uname -sr); database on $(df --output=fstype "$dir" | tail -1)"
read -r _ done _ seconds < <("$build/bench_server" submit "$jobs" 1000)
printf 'ferry, %d durable no-op calls, 2 workers: %.2f s, %.0f jobs/s\n' "$done" "$seconds" \
  "$(echo "$done / $seconds" | bc -l)"
read -r _ p50 _ p99 < <("$build/bench_server" latency 200)
printf 'ferry, one call on an idle server, submit to result: p50 %.2f ms, p99 %.2f ms\n' "$p50" "$p99"
