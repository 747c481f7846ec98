#!/usr/bin/env bash
# ferry::Pool against Python's multiprocessing.Pool, side by side, in one run,
# both with 2 worker processes and warmed up:
#   - map over 1,000,000 tiny tasks (n -> n*n), default chunksize
#   - map over the first 100,000 with chunksize 1
#   - the round trip of one task: submit+get against apply_async+get
# Each figure is the best of $RUNS runs (default 3).
# Usage: bench/pool.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
runs=${RUNS:-3}
[[ -x $build/bench_pool ]] || { echo "bench: build first ($build/bench_pool not found)" >&2; exit 2; }

best() {  # best NAME FILE...: the smallest value of NAME over the files
  awk -v name="$1" '$1 == name && (best == "" || $2 < best) { best = $2 } END { print best }' "${@:2}"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 0; i < runs; i++)); do
  "$build/bench_pool" > "$work/ferry.$i"
  python3 bench/pool_python.py > "$work/python.$i"
done

echo "machine: $(nproc) cores, $(uname -sr); Python $(python3 -c 'import sys; print(sys.version.split()[0])'); best of $runs runs"
echo "load average (1, 5, 15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
printf '| %-40s | %12s | %12s | %10s |\n' "2 worker processes" "ferry::Pool" "Python Pool" "ferry is ×"
printf '|%s|%s|%s|%s|\n' ------------------------------------------ -------------- -------------- ------------
for pair in "map_1m:map, 1,000,000 tasks (s)" "map_100k_chunk1:map, 100,000 tasks, chunksize 1 (s)" \
            "round_trip:submit + get, one task (µs)"; do
  name=${pair%%:*}
  ferry=$(best "$name" "$work"/ferry.*)
  python=$(best "$name" "$work"/python.*)
  scale=1
  [[ $name == round_trip ]] && scale=1000000
  printf '| %-40s | %12.3f | %12.3f | %10.1f |\n' "${pair#*:}" "$(echo "$ferry * $scale" | bc -l)" \
    "$(echo "$python * $scale" | bc -l)" "$(echo "$python / $ferry" | bc -l)"
done
