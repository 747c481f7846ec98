#!/usr/bin/env bash
# The classic pair end to end: a server, two task workers, one task manager.
# Usage: task_pair.sh FERRY TASK_WORKER TASK_MANAGER
set -euo pipefail
ferry=$1 worker=$2 manager=$3
source "$(dirname "$0")/../../scripts/local_server.sh"
export FERRY_TOKEN=pair-secret
start_local_server "$ferry"
background "$worker"
background "$worker"
"$manager"
