#!/usr/bin/env bash
# The classic pair in Python end to end: a server with a token, two Python
# task workers, one Python task manager.
# Usage: python_task_pair.sh FERRY PYTHON
set -euo pipefail
ferry=$1 python=$2
here=$(cd "$(dirname "$0")/../.." && pwd)
source "$here/scripts/local_server.sh"
export FERRY_TOKEN=pair-secret PYTHONPATH=$here/clients/python
start_local_server "$ferry"
background "$python" "$here/examples/python/task_worker.py"
background "$python" "$here/examples/python/task_worker.py"
"$python" "$here/examples/python/task_manager.py" | tee "$dir/manager.out"
[[ $(grep -c '^result: ' "$dir/manager.out") == 10 ]]
