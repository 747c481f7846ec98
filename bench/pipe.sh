#!/usr/bin/env bash
# ferry run --pipe against GNU parallel --pipe, side by side, in one run.
#
# 1 GB of numbered lines (seq) in a file, cut into blocks of 1 MiB (both
# tools' default) and fed to `wc -l` jobs, 2 at a time, output in input order
# (-k). Prints each tool's time and throughput (MB/s), checks that both
# counted every line, and reports ferry's peak memory (VmHWM, from
# /usr/bin/time -v when it is there).
#
# Each measurement is the best of $RUNS runs (default 3).
# Usage: bench/pipe.sh [path/to/ferry]
set -euo pipefail
cd "$(dirname "$0")/.."
ferry=${1:-build/release/ferry}
runs=${RUNS:-3}
bytes=${BYTES:-1000000000}

command -v parallel >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq parallel >/dev/null
[[ -x $ferry ]] || { echo "bench: build ferry first ($ferry not found)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{ seq 1 200000000 || true; } | head -c "$bytes" > "$work/input"
lines=$(wc -l < "$work/input")

# best_of NAME CMD...: the best wall time over $runs runs; checks the total.
best_of() {
  local name=$1 best="" start end elapsed total
  shift
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s.%N)
    total=$("$@" < "$work/input" | awk '{ s += $1 } END { print s }')
    end=$(date +%s.%N)
    [[ $total == "$lines" ]] || { echo "bench: $name counted $total lines, not $lines" >&2; exit 1; }
    elapsed=$(echo "$end - $start" | bc -l)
    if [[ -z $best ]] || (($(echo "$elapsed < $best" | bc -l))); then best=$elapsed; fi
  done
  printf '%.3f\n' "$best"
}

echo "machine: $(nproc) cores, $(uname -sr); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $bytes bytes, $lines lines; blocks of 1 MiB to wc -l, 2 at a time, -k; best of $runs"
ferry_s=$(best_of ferry "$ferry" run --pipe -k -j 2 wc -l)
parallel_s=$(best_of parallel parallel --pipe -k -j 2 wc -l)
mb=$(echo "$bytes / 1000000" | bc -l)
printf '| %-28s | %8s | %8s |\n' runner seconds MB/s
printf '|%s|%s|%s|\n' ------------------------------ ---------- ----------
printf '| %-28s | %8.2f | %8.0f |\n' "ferry run --pipe -j 2" "$ferry_s" "$(echo "$mb / $ferry_s" | bc -l)"
printf '| %-28s | %8.2f | %8.0f |\n' "parallel --pipe -j 2" "$parallel_s" "$(echo "$mb / $parallel_s" | bc -l)"
printf 'ferry is %.1fx faster\n' "$(echo "$parallel_s / $ferry_s" | bc -l)"
if [[ -x /usr/bin/time ]]; then
  rss=$( { /usr/bin/time -v "$ferry" run --pipe -k -j 2 wc -l < "$work/input" >/dev/null; } 2>&1 |
    awk -F: '/Maximum resident/ { gsub(/ /, "", $2); print $2 }')
  echo "ferry's peak RSS: $((rss / 1024)) MiB"
fi
