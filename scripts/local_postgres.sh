# Sourced by scripts that need a throwaway PostgreSQL on this machine:
#   source scripts/local_postgres.sh
#   start_local_postgres DIR     # initdb into DIR/pg, start it on a free port;
#                                # sets FERRY_PG_URL (postgresql://ferry@127.0.0.1:PORT/ferry)
#   stop_local_postgres          # fast shutdown (also done on exit by the caller's cleanup)
# As root the server runs as `nobody` (initdb refuses root). fsync stays on:
# this is for measuring durable work. Debian's postgresql-15 provides it
# (scripts/setup.sh).
local_postgres_pid=
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

# A plain command prefix, not a function: `"${as_runner[@]}" postgres &` is
# then one process, so $! is the server's pid itself and a signal to it
# reaches the server (a function would run in a subshell that only waits).
as_runner=()
[[ $(id -u) == 0 ]] && as_runner=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

start_local_postgres() {
  local dir=$1/pg port
  [[ -n $pg_bin ]] || { echo "PostgreSQL is not installed (scripts/setup.sh)" >&2; return 1; }
  mkdir -p "$dir"
  chmod 755 "$1"
  [[ $(id -u) == 0 ]] && chown nobody:nogroup "$dir"
  "${as_runner[@]}" "$pg_bin/initdb" -D "$dir/data" -U ferry -A trust -E UTF8 --locale=C \
    --no-instructions > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as_runner[@]}" "$pg_bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c shared_buffers=256MB -c max_wal_size=2GB > "$dir/postgres.log" 2>&1 &
  local_postgres_pid=$!
  for _ in $(seq 300); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port" || { cat "$dir/postgres.log" >&2; return 1; }
  "$pg_bin/psql" -q -h 127.0.0.1 -p "$port" -U ferry -d postgres -c "CREATE DATABASE ferry"
  export FERRY_PG_URL=postgresql://ferry@127.0.0.1:$port/ferry
}

stop_local_postgres() {
  [[ -n $local_postgres_pid ]] || return 0
  kill -INT "$local_postgres_pid" 2> /dev/null || true
  wait "$local_postgres_pid" 2> /dev/null || true
  local_postgres_pid=
}
