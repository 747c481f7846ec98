#!/usr/bin/env bash
# The durable server under load, beside its peers, in one run: 20,000 no-op
# calls through `ferry server` (a real SQLite file, synchronous=FULL) and 2
# worker processes on loopback; the same on a PostgreSQL database on this
# machine; then the same work through ferry's Python client and workers
# (clients/python), and through Python's
# multiprocessing.managers task/result queues, Celery with Redis, Dask
# distributed and beanstalkd, each with 2 worker processes. Prints jobs/s and
# ferry's ratio to each; then the latency of one call on an idle server.
# Peers come from Debian packages, installed here when missing; a peer that
# cannot be installed or fails is skipped with the reason.
# Usage: bench/distributed.sh [build directory, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
jobs=${JOBS:-20000}
[[ -x $build/ferry && -x $build/bench_server ]] || { echo "bench: build first" >&2; exit 2; }

peer_packages=(python3-celery python3-redis redis-server python3-dask python3-distributed
  beanstalkd bc)
source scripts/debian_packages.sh
install_packages "${peer_packages[@]}" > /dev/null 2>&1 ||
  echo "(some peers could not be installed; they are skipped below)"
python=/usr/bin/python3  # Debian's, where its python3-* packages are

source scripts/local_server.sh
export FERRY_TOKEN=bench
start_local_server "$build/ferry"
for i in 1 2; do background "$build/bench_server" worker 2; done

echo "machine: $(nproc) cores, $(uname -sr); database on $(df --output=fstype "$dir" | tail -1)"
echo "$jobs no-op calls, 2 worker processes each"
read -r _ done _ seconds < <("$build/bench_server" submit "$jobs" 1000)
ferry_rate=$(echo "$done / $seconds" | bc -l)
printf '%-44s %8.2f s %9.0f jobs/s\n' "ferry (durable: SQLite, fsync per commit)" "$seconds" \
  "$ferry_rate"

# The same work with the server on PostgreSQL: a throwaway cluster on this
# machine (fsync on, synchronous_commit=on), a fresh server and 2 workers.
source scripts/local_postgres.sh
if start_local_postgres "$dir" > "$dir/pg-start.log" 2>&1; then
  pids+=($local_postgres_pid)
  sqlite_server=$FERRY_SERVER
  "$build/ferry" server --listen 127.0.0.1:0 --db "$FERRY_PG_URL" \
    --address-file "$dir/pg-address" 2> "$dir/pg-server.log" &
  pg_pids=($!)
  for _ in $(seq 200); do [[ -s $dir/pg-address ]] && break; sleep 0.05; done
  export FERRY_SERVER=$(cat "$dir/pg-address")
  # Listening first, then leading once elected.
  for _ in $(seq 200); do
    curl -s "$FERRY_SERVER/healthz" | grep -q '"leader"' && break
    sleep 0.05
  done
  for i in 1 2; do
    "$build/bench_server" worker 2 2>> "$dir/pg-worker.log" &
    pg_pids+=($!)
  done
  pids+=("${pg_pids[@]}")
  read -r _ done _ seconds < <("$build/bench_server" submit "$jobs" 1000)
  printf '%-44s %8.2f s %9.0f jobs/s\n' "ferry (durable: PostgreSQL 15, fsync)" "$seconds" \
    "$(echo "$done / $seconds" | bc -l)"
  kill "${pg_pids[@]}" 2> /dev/null || true
  wait "${pg_pids[@]}" 2> /dev/null || true
  stop_local_postgres
  export FERRY_SERVER=$sqlite_server
else
  printf '%-44s skipped: %s\n' "ferry on PostgreSQL" "$(tail -1 "$dir/pg-start.log")"
fi

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# peer NAME COMMAND...: runs a peer that prints "<jobs> <seconds>".
peer() {
  local name=$1 out
  shift
  if out=$(timeout 600 "$@" 2> "$dir/peer.log" | tail -1) && [[ $out =~ ^[0-9]+\ [0-9.]+$ ]]; then
    read -r n s <<< "$out"
    local rate=$(echo "$n / $s" | bc -l)
    printf '%-44s %8.2f s %9.0f jobs/s   ferry is %.1fx\n' "$name" "$s" "$rate" \
      "$(echo "$ferry_rate / $rate" | bc -l)"
  else
    printf '%-44s skipped: %s\n' "$name" "$(tail -1 "$dir/peer.log" 2>/dev/null || echo failed)"
  fi
}

peer "ferry with Python workers (durable)" "$python" bench/peers/ferry_python_peer.py "$jobs" 2
peer "Python multiprocessing.managers (in memory)" "$python" bench/peers/managers_peer.py "$jobs" 2

if command -v beanstalkd > /dev/null; then
  port=$(free_port)
  mkdir -p "$dir/binlog"
  background beanstalkd -l 127.0.0.1 -p "$port" -b "$dir/binlog"
  sleep 0.2
  peer "beanstalkd (binlog, no fsync), Python workers" \
    "$python" bench/peers/beanstalk_peer.py "$jobs" 2 "$port"
else
  printf '%-44s skipped: beanstalkd is not installed\n' "beanstalkd"
fi

if command -v redis-server > /dev/null && "$python" -c 'import celery, redis' 2> /dev/null; then
  port=$(free_port)
  background redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --logfile "$dir/redis.log"
  sleep 0.2
  CELERY_PEER_REDIS=redis://127.0.0.1:$port/0 \
    peer "Celery + Redis (in memory)" "$python" bench/peers/celery_peer.py "$jobs" 2
else
  printf '%-44s skipped: Celery or Redis is not installed\n' "Celery + Redis"
fi

if "$python" -c 'import dask.distributed' 2> /dev/null; then
  peer "Dask distributed (in memory)" "$python" bench/peers/dask_peer.py "$jobs" 2
else
  printf '%-44s skipped: Dask distributed is not installed\n' "Dask distributed"
fi

read -r _ p50 _ p99 < <("$build/bench_server" latency 200)
printf 'ferry, one call on an idle server, submit to result: p50 %.2f ms, p99 %.2f ms\n' "$p50" "$p99"
