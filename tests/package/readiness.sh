#!/usr/bin/env bash
# What a unit of Type=notify relies on, without systemd: the server says
# READY=1 once it listens and STOPPING=1 on SIGTERM; a worker says READY=1
# once it reached the server, and exits 1 without it when the token is
# refused. And --log-format json: each line one object with fixed fields.
# Usage: readiness.sh FERRY PYTHON notify|exec
set -euo pipefail
ferry=$1 python=$2 type=$3
here=$(dirname "$0")
scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# listen NAME: a notify socket $scratch/NAME.sock, its messages in $scratch/NAME.out.
listen() {
  "$python" "$here/notify_socket.py" "$scratch/$1.sock" > "$scratch/$1.out" &
  pids+=($!)
  for _ in $(seq 200); do grep -q listening "$scratch/$1.out" 2> /dev/null && return; sleep 0.05; done
  echo "the notify socket $1 did not start" >&2
  return 1
}
# ends PID: waits (at most 30 s) until that child exits; its exit status.
ends() {
  for _ in $(seq 600); do
    if [[ $(awk '{print $3}' "/proc/$1/stat" 2> /dev/null || echo gone) =~ ^(Z|gone)$ ]]; then
      wait "$1"
      return
    fi
    sleep 0.05
  done
  echo "process $1 did not end" >&2
  return 1
}
# heard NAME TEXT: waits (at most 20 s) until NAME's socket received TEXT.
heard() {
  for _ in $(seq 400); do grep -q "$2" "$scratch/$1.out" && return; sleep 0.05; done
  echo "$1 never said $2; it said: $(cat "$scratch/$1.out")" >&2
  return 1
}

listen server
NOTIFY_SOCKET=$scratch/server.sock "$ferry" server --listen 127.0.0.1:0 --db "$scratch/ferry.db" \
  --address-file "$scratch/address" --token secret --log-format json 2> "$scratch/server.log" &
server=$!
pids+=($server)
if [[ $type == exec ]]; then
  echo "built without libsystemd: the units are Type=exec; nothing to hear"
  exit 0
fi
heard server "READY=1;STATUS=listening on http://127.0.0.1:"
url=$(cat "$scratch/address")  # written before READY=1
grep -q "STATUS=listening on $url" "$scratch/server.out"

listen refused
if NOTIFY_SOCKET=$scratch/refused.sock timeout 60 "$ferry" worker --server "$url" --token wrong \
  --log-format json 2> "$scratch/refused.log"; then
  echo "a worker with a wrong token went on" >&2
  exit 1
fi
[[ $(grep -vc listening "$scratch/refused.out") == 0 ]] || {
  echo "a refused worker said it was ready: $(cat "$scratch/refused.out")" >&2
  exit 1
}

listen worker
NOTIFY_SOCKET=$scratch/worker.sock "$ferry" worker --server "$url" --token secret --slots 2 \
  --log-format json 2> "$scratch/worker.log" &
worker=$!
pids+=($worker)
heard worker "READY=1;STATUS=serving $url with 2 slots"
kill -TERM "$worker"
ends "$worker"
heard worker "STOPPING=1"
kill -TERM "$server"
ends "$server"
heard server "STOPPING=1"
echo "readiness: the server and the worker tell systemd when they are ready and stopping"

# Every line of every log is one JSON object with the fixed fields.
"$python" - "$scratch/server.log" "$scratch/worker.log" "$scratch/refused.log" << 'PYTHON'
import json, sys
messages = []
for path in sys.argv[1:]:
    for line in open(path):
        event = json.loads(line)
        assert list(event) == ["time", "level", "source", "message"], event
        assert event["time"].endswith("Z") and event["level"] in ("info", "warning", "error"), event
        messages.append((event["source"], event["level"], event["message"]))
assert any(m[0] == "server" and m[2].startswith("listening on") for m in messages), messages
assert any(m[0] == "worker" and m[1] == "error" and "refused the token" in m[2]
           for m in messages), messages
print(f"--log-format json: {len(messages)} lines, each one JSON object")
PYTHON
