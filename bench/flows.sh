#!/usr/bin/env bash
# The load test ferry began with: many flows created and run at once. FLOWS
# flows (10,000 by default) of 5 commands each, `sleep 0.01`, a diamond and a
# tail (a -> b, c -> d -> e), through one server (SQLite) and 2 `ferry
# worker` processes; then the same 5 jobs per submit without dependencies.
# Each run has a server of its own. Prints flows/s, jobs/s and what the
# dependencies cost.
# Usage: bench/flows.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
flows=${FLOWS:-10000}
slots=${SLOTS:-16}
[[ -x $build/ferry && -x $build/bench_server ]] || { echo "bench: build first" >&2; exit 2; }
command -v bc > /dev/null || { echo "bench: needs bc (apt-get install bc)" >&2; exit 2; }

echo "machine: $(nproc) cores, $(uname -sr)"
echo "$flows flows of 5 jobs (sleep 0.01), 2 workers with $slots slots each"
# one DEPS: "flows F jobs J seconds S" from a fresh server and workers.
one() (
  source scripts/local_server.sh
  export FERRY_TOKEN=bench
  start_local_server "$build/ferry" --token bench
  for i in 1 2; do
    background "$build/ferry" worker --slots "$slots" --id "w$i" --kill-grace 1
  done
  "$build/bench_server" flows "$flows" 0.01 "$1"
)
read -r _ f _ jobs_with _ with < <(one 1)
read -r _ _ _ jobs_without _ without < <(one 0)
rate() { echo "$1 / $2" | bc -l; }
printf '%-34s %8.2f s %8.0f flows/s %8.0f jobs/s\n' "with dependencies (flows)" "$with" \
  "$(rate "$f" "$with")" "$(rate "$jobs_with" "$with")"
printf '%-34s %8.2f s %8s         %8.0f jobs/s\n' "without (plain batches of 5)" "$without" "" \
  "$(rate "$jobs_without" "$without")"
printf 'dependencies cost %.1f%% of throughput\n' \
  "$(echo "(1 - $without / $with) * 100" | bc -l)"
