# Sourced by scripts that need a throwaway ferry server on this machine:
#   source scripts/local_server.sh
#   start_local_server path/to/ferry      # sets FERRY_SERVER; $dir is a scratch directory
#   background some command ...           # started now, ended (by pid) on exit
# Everything started is ended, and the scratch directory removed, when the
# script exits.
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# background COMMAND... : runs it in the background, stderr to $dir/<name>.log.
background() {
  "$@" 2>> "$dir/$(basename "$1").log" &
  pids+=($!)
}

# start_local_server FERRY [SERVER OPTIONS...]: a server on a free loopback port.
start_local_server() {
  local ferry=$1
  shift
  "$ferry" server --listen 127.0.0.1:0 --db "$dir/ferry.db" --address-file "$dir/address" "$@" \
    2> "$dir/server.log" &
  server_pid=$!
  pids+=($server_pid)
  for _ in $(seq 200); do [[ -s $dir/address ]] && break; sleep 0.05; done
  [[ -s $dir/address ]] || { cat "$dir/server.log" >&2; return 1; }
  export FERRY_SERVER=$(cat "$dir/address")
}
