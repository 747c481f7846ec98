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
# shared, and the best run is the one least disturbed.
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

# best_of CMD...: prints the best wall time in seconds over $runs runs.
best_of() {
  local best="" start end elapsed
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; return 1; }
    end=$(date +%s.%N)
    elapsed=$(echo "$end - $start" | bc -l)
    if [[ -z $best ]] || (($(echo "$elapsed < $best" | bc -l))); then best=$elapsed; fi
  done
  printf '%.3f\n' "$best"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "ferry: $("$ferry" --version); best of $runs runs"
echo
echo "1. $jobs x /bin/true N, 2 in flight"
declare -A seconds
seconds[ferry]=$(best_of "$ferry" run -j 2 /bin/true :::: "$work/numbers")
seconds[spawn_limit]=$(best_of "$work/spawn_limit" "$jobs" 2 /bin/true {})
seconds[xargs]=$(best_of xargs -P 2 -n 1 -a "$work/numbers" /bin/true)
seconds[parallel]=$(best_of parallel -j 2 /bin/true :::: "$work/numbers")
seconds[python]=$(best_of python3 bench/pool_true.py 2 "$work/numbers" /bin/true)

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
slow_ferry=$(best_of "$ferry" run -j 64 sleep 0.01 :::: "$work/zeros")
slow_limit=$(best_of "$work/spawn_limit" "$slow_jobs" 64 sleep 0.01)
slow_xargs=$(best_of xargs -P 64 -n 1 -a "$work/zeros" sleep 0.01)
printf '| %-32s | %8s | %10s |\n' runner seconds "× ideal"
printf '|%s|%s|%s|\n' "----------------------------------" ---------- ------------
printf '| %-32s | %8.3f | %10.2f |\n' "ideal (jobs × 0.01 s / 64)" "$ideal" 1
for pair in "C posix_spawn+waitpid:$slow_limit" "ferry run -j 64:$slow_ferry" "xargs -P 64:$slow_xargs"; do
  printf '| %-32s | %8.3f | %10.2f |\n' "${pair%%:*}" "${pair##*:}" "$(echo "${pair##*:} / $ideal" | bc -l)"
done
