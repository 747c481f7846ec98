#!/usr/bin/env bash
# The README's first command, as a user runs it: `ferry demo` ends with exit
# status 0, and its flow ran in order (build first, report last, the tests
# and calls between) and left nothing behind.
# Usage: demo.sh FERRY
set -euo pipefail
ferry=$1
out=$(mktemp)
export TMPDIR=$(mktemp -d)
trap 'rm -f "$out"; rm -rf "$TMPDIR"' EXIT
"$ferry" demo | tee "$out"
ended=$(grep -E '^ +[0-9.]+s  job ' "$out" | grep -v 'retried$' | awk '{print $4}')
[[ $(head -1 <<<"$ended") == build ]]
[[ $(tail -1 <<<"$ended") == report ]]
[[ $(grep -c '^test-' <<<"$ended") == 8 && $(grep -c '^square(' <<<"$ended") == 8 ]]
grep -q '^ferry demo: flow [0-9]* succeeded: 18 jobs, 18 succeeded' "$out"
[[ -z $(ls -A "$TMPDIR") ]] || { echo "left behind: $(ls -A "$TMPDIR")"; exit 1; }
