#!/usr/bin/env bash
# What the dashboard and metrics cost the job path: the ferry part of
# bench/distributed.sh (20,000 no-op calls through a durable server, 2 worker
# processes of 2 threads) in turns — alone; with the dashboard's overview open
# in headless Chromium on this machine (it follows the coalesced event stream
# and reads /v1/stats and /v1/queues at most once a second); with the jobs page
# open; and with /metrics scraped every second. Each turn runs every mode
# once, on a fresh server; prints each run, then the best and the median.
# Uses the browser test's playwright-core (tests/browser/install.sh).
# Usage: bench/dashboard.sh [build directory, default build/release]   (TURNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
jobs=${JOBS:-20000}
turns=${TURNS:-5}
modules=tests/browser
[[ -x $build/ferry && -x $build/bench_server ]] || { echo "bench: build first" >&2; exit 2; }
[[ -d $modules/node_modules/playwright-core ]] ||
  { echo "bench: no playwright-core (bash tests/browser/install.sh)" >&2; exit 2; }

scratch=$(mktemp -d)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$scratch"' EXIT
export FERRY_TOKEN=bench

# run MODE: one run on a fresh server; prints its seconds.
run() {
  local mode=$1 here
  trap stop_all EXIT  # in this subshell: its processes end with it
  here=$(mktemp -d "$scratch/$mode.XXXX")
  "$build/ferry" server --listen 127.0.0.1:0 --db "$here/ferry.db" --address-file "$here/address" \
    > /dev/null 2> "$here/server.log" &
  local server=$!
  pids+=($server)
  for _ in $(seq 200); do [[ -s $here/address ]] && break; sleep 0.05; done
  export FERRY_SERVER=$(cat "$here/address")
  for _ in 1 2; do
    "$build/bench_server" worker 2 > /dev/null 2>> "$here/worker.log" &
    pids+=($!)
  done
  case $mode in
    overview | jobs)
      local hash='#/'
      [[ $mode == jobs ]] && hash='#/jobs'
      node bench/dashboard_open.mjs "$modules" /usr/bin/chromium "$FERRY_SERVER" "$FERRY_TOKEN" \
        "$hash" > "$here/browser.out" 2> "$here/browser.log" &
      pids+=($!)
      for _ in $(seq 600); do grep -q open "$here/browser.out" && break; sleep 0.1; done
      grep -q open "$here/browser.out" || { cat "$here/browser.log" >&2; exit 1; }
      sleep 2  # Chromium's start is over before the work starts
      ;;
    stream)
      curl -s -N -o /dev/null -H "Authorization: Bearer $FERRY_TOKEN" "$FERRY_SERVER/v1/events" &
      pids+=($!)
      ;;
    metrics)
      (for _ in $(seq 600); do
        curl -s -o /dev/null -H "Authorization: Bearer $FERRY_TOKEN" "$FERRY_SERVER/metrics"
        sleep 1
      done) > /dev/null &
      pids+=($!)
      ;;
  esac
  local done seconds cpu_before cpu_after
  cpu_before=$(cpu_ns "$server")
  read -r _ done _ seconds < <("$build/bench_server" submit "$jobs" 1000)
  cpu_after=$(cpu_ns "$server")
  [[ $done == "$jobs" ]] || { echo "bench: $mode: $done of $jobs jobs succeeded" >&2; exit 1; }
  stop_all
  echo "$seconds $(echo "($cpu_after - $cpu_before) / 1000000000" | bc -l)"
}

# cpu_ns PID: nanoseconds its threads have run (exact, unlike clock ticks).
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat | awk '{ sum += $1 } END { printf "%d", sum }'
}

modes=(${MODES:-alone overview jobs metrics})
declare -A times cpus
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for turn in $(seq "$turns"); do
  for mode in "${modes[@]}"; do
    read -r seconds cpu < <(run "$mode")
    times[$mode]+="$seconds "
    cpus[$mode]+="$cpu "
    printf 'turn %d  %-9s %7.3f s  %7.0f jobs/s  server CPU %.3f s\n' "$turn" "$mode" "$seconds" \
      "$(echo "$jobs / $seconds" | bc -l)" "$cpu"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# median WORDS...: the middle one, sorted as numbers.
median() {
  local sorted=($(printf '%s\n' "$@" | sort -g))
  echo "${sorted[$((${#sorted[@]} / 2))]}"
}
printf '%-32s %8s %9s %12s %16s\n' "$jobs no-op calls" "best s" "median s" "best jobs/s" \
  "median server CPU s"
for mode in "${modes[@]}"; do
  read -r -a all <<< "${times[$mode]}"
  read -r -a cpu_all <<< "${cpus[$mode]}"
  best=$(printf '%s\n' "${all[@]}" | sort -g | head -1)
  median=$(median "${all[@]}")
  label=$mode
  case $mode in
    alone) label="no dashboard, no scraper" ;;
    overview) label="dashboard overview open" ;;
    jobs) label="dashboard jobs page open" ;;
    metrics) label="/metrics scraped every second" ;;
    stream) label="curl following /v1/events" ;;
  esac
  printf '%-32s %8.3f %9.3f %12.0f %16.3f\n' "$label" "$best" "$median" \
    "$(echo "$jobs / $best" | bc -l)" "$(median "${cpu_all[@]}")"
done
