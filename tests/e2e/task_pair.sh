#!/usr/bin/env bash
# The classic pair end to end: a server, two task workers, one task manager.
# Usage: task_pair.sh FERRY TASK_WORKER TASK_MANAGER
set -euo pipefail
ferry=$1 worker=$2 manager=$3
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
export FERRY_TOKEN=pair-secret
"$ferry" server --listen 127.0.0.1:0 --db "$dir/ferry.db" --address-file "$dir/address" 2> "$dir/server.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s $dir/address ]] && break; sleep 0.05; done
export FERRY_SERVER=$(cat "$dir/address")
"$worker" 2> "$dir/worker1.log" & pids+=($!)
"$worker" 2> "$dir/worker2.log" & pids+=($!)
"$manager"
