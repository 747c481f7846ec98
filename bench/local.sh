#!/usr/bin/env bash
# ferry run against its peers on one machine, side by side, in one run.
#
#  1. Spawn rate: 5,000 `/bin/true N` jobs, 2 in flight, through ferry run,
#     xargs -P2, GNU parallel -j2, Python multiprocessing.Pool(2) +
#     subprocess.run, and spawn_limit (bare posix_spawn + waitpid in C: the
#     physical limit). Prints jobs/s and each one's ratio to ferry.
#  2. The 10,000 slow calls: 10,000 jobs of `sleep 0.01` with 64 in flight,
#     wall time against the ideal 10,000 x 0.01 s / 64 = 1.5625 s.
#
# Each measurement is the best of $RUNS runs (default 3): the machine is
# shared, and the best run is the one least disturbed. The runs take turns
# (every runner once, then every runner again), so that a burst of load from
# elsewhere falls on all of them rather than on one runner's three runs.
# Usage: bench/local.sh [path/to/ferry]
set -euo pipefail
cd "$(dirname "$0")/.."
ferry=${1:-build/release/ferry}
runs=${RUNS:-3}
jobs=${JOBS:-5000}
slow_jobs=${SLOW_JOBS:-10000}

need=()
command -v parallel >/dev/null || need+=(parallel)
command -v cc >/dev/null || need+=(gcc)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[[ -x $ferry ]] || { echo "bench: build ferry first ($ferry not found)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/spawn_limit" bench/spawn_limit.c
seq "$jobs" > "$work/numbers"
awk -v n="$slow_jobs" 'BEGIN { for (i = 0; i < n; i++) print 0 }' > "$work/zeros"  # `sleep 0.01 0` sleeps 0.01 s

# time_once CMD...: the wall time of one run, in seconds.
time_once() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; return 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

# best_of_turns NAME=CMD... : runs every command once per turn, $runs turns,
# and sets seconds[NAME] to each one's best time.
declare -A seconds
best_of_turns() {
  local name elapsed
  for ((turn = 0; turn < runs; turn++)); do
    for name in "${order[@]}"; do
      elapsed=$(time_once ${commands[$name]})
      if [[ -z ${seconds[$name]:-} ]] || (($(echo "$elapsed < ${seconds[$name]}" | bc -l))); then
        seconds[$name]=$elapsed
      fi
    done
  done
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "ferry: $("$ferry" --version); best of $runs runs, taking turns; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "1. $jobs x /bin/true N, 2 in flight"
declare -A commands=(
  [ferry]="$ferry run -j 2 /bin/true :::: $work/numbers"
  [spawn_limit]="$work/spawn_limit $jobs 2 /bin/true {}"
  [xargs]="xargs -P 2 -n 1 -a $work/numbers /bin/true"
  [parallel]="parallel -j 2 /bin/true :::: $work/numbers"
  [python]="python3 bench/pool_true.py 2 $work/numbers /bin/true"
)
order=(spawn_limit ferry xargs parallel python)
best_of_turns

printf '| %-42s | %8s | %8s | %12s |\n' runner seconds jobs/s "ferry is ×"
printf '|%s|%s|%s|%s|\n' "--------------------------------------------" ---------- ---------- --------------
for name in spawn_limit ferry xargs parallel python; do
  case $name in
    spawn_limit) label="C posix_spawn+waitpid (the limit)" ;;
    ferry) label="ferry run -j 2" ;;
    xargs) label="xargs -P 2 -n 1" ;;
    parallel) label="GNU parallel -j 2" ;;
    python) label="Python multiprocessing.Pool(2)+subprocess" ;;
  esac
  rate=$(echo "$jobs / ${seconds[$name]}" | bc -l)
  ratio=$(echo "${seconds[$name]} / ${seconds[ferry]}" | bc -l)
  printf '| %-42s | %8.2f | %8.0f | %12.2f |\n' "$label" "${seconds[$name]}" "$rate" "$ratio"
done
echo "(ferry is ×: the runner's time over ferry's; above 1 means ferry is faster)"
limit_share=$(echo "${seconds[spawn_limit]} / ${seconds[ferry]}" | bc -l)
printf 'ferry reaches %.2f of the spawn limit.\n' "$limit_share"

echo
echo "2. $slow_jobs x sleep 0.01, 64 in flight"
ideal=$(echo "$slow_jobs * 0.01 / 64" | bc -l)
commands=(
  [slow_ferry]="$ferry run -j 64 sleep 0.01 :::: $work/zeros"
  [slow_limit]="$work/spawn_limit $slow_jobs 64 sleep 0.01"
  [slow_xargs]="xargs -P 64 -n 1 -a $work/zeros sleep 0.01"
)
order=(slow_limit slow_ferry slow_xargs)
best_of_turns
slow_ferry=${seconds[slow_ferry]}
slow_limit=${seconds[slow_limit]}
slow_xargs=${seconds[slow_xargs]}
printf '| %-32s | %8s | %10s |\n' runner seconds "× ideal"
printf '|%s|%s|%s|\n' "----------------------------------" ---------- ------------
printf '| %-32s | %8.3f | %10.2f |\n' "ideal (jobs × 0.01 s / 64)" "$ideal" 1
for pair in "C posix_spawn+waitpid:$slow_limit" "ferry run -j 64:$slow_ferry" "xargs -P 64:$slow_xargs"; do
  printf '| %-32s | %8.3f | %10.2f |\n' "${pair%%:*}" "${pair##*:}" "$(echo "${pair##*:} / $ideal" | bc -l)"
done
