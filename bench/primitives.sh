#!/usr/bin/env bash
# ferry's process primitives against Python's multiprocessing, side by side,
# in one run (see bench/primitives_bench.cpp and primitives_python.py):
#   - Lock acquire+release, 2 processes contending for it
#   - Value increments under its lock, 2 processes
#   - Pipe round trip of a small message between 2 processes
#   - one call of a Manager's dict from another process
# and the kernel's floor under any round trip: a bare Unix socket pair, also
# with each side polling for 5 µs before it sleeps (what spinning would buy).
# Each figure is the best of $RUNS runs (default 3), ferry and Python
# alternating so that both see the same machine.
# Usage: bench/primitives.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
runs=${RUNS:-3}
[[ -x $build/bench_primitives ]] || {
  echo "bench: build first ($build/bench_primitives not found)" >&2
  exit 2
}

best() {  # best NAME FILE...: the smallest value of NAME over the files
  awk -v name="$1" '$1 == name && (best == "" || $2 < best) { best = $2 } END { print best }' "${@:2}"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 0; i < runs; i++)); do
  "$build/bench_primitives" > "$work/ferry.$i"
  python3 bench/primitives_python.py > "$work/python.$i"
done

echo "machine: $(nproc) cores, $(uname -sr); Python $(python3 -c 'import sys; print(sys.version.split()[0])'); best of $runs runs"
echo "load average (1, 5, 15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
printf '| %-52s | %10s | %10s | %10s |\n' "2 processes" "ferry" "Python" "ferry is ×"
printf '|%s|%s|%s|%s|\n' ------------------------------------------------------ ------------ ------------ ------------
for pair in "lock_pair:Lock acquire + release (ns)" "value_increment:Value += 1 under get_lock() (ns)" \
            "pipe_round_trip:Pipe round trip, one int (µs)" \
            "manager_call:Manager dict set from another process (µs)"; do
  name=${pair%%:*}
  ferry=$(best "$name" "$work"/ferry.*)
  python=$(best "$name" "$work"/python.*)
  scale=1000000000
  [[ $name == pipe_round_trip || $name == manager_call ]] && scale=1000000
  printf '| %-52s | %10.1f | %10.1f | %10.1f |\n' "${pair#*:}" "$(echo "$ferry * $scale" | bc -l)" \
    "$(echo "$python * $scale" | bc -l)" "$(echo "$python / $ferry" | bc -l)"
done
floor=$(best socket_round_trip "$work"/ferry.*)
printf '| %-52s | %10.1f | %10s | %10s |\n' "bare socket pair round trip, 8 bytes, no library (µs)" \
  "$(echo "$floor * 1000000" | bc -l)" "" ""
polling=$(best polling_round_trip "$work"/ferry.*)
printf '| %-52s | %10.1f | %10s | %10s |\n' "the same, polling 5 µs before sleeping (µs)" \
  "$(echo "$polling * 1000000" | bc -l)" "" ""
