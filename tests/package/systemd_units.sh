#!/usr/bin/env bash
# The systemd units as `cmake --install` writes them pass `systemd-analyze
# verify` (their directives, the binary they start, the man pages they
# name), and systemd rates their hardening within bounds.
# Usage: systemd_units.sh BUILD
set -euo pipefail
build=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build" --component runtime --prefix "$scratch/prefix" > "$scratch/install.log"
units=$scratch/prefix/lib/systemd/system
server=$units/ferry-server.service worker=$units/ferry-worker@.service
grep -q "^ExecStart=$scratch/prefix/bin/ferry server " "$server"
grep -q "^ExecStart=$scratch/prefix/bin/ferry worker " "$worker"

# verify runs `man` for each Documentation=man: page: those installed here.
MANPATH=$scratch/prefix/share/man systemd-analyze verify "$server" "$worker"
echo "systemd-analyze verify: both units pass"
# The same without the pages fails: the check above did look for them.
if MANPATH=$scratch/none systemd-analyze verify "$server" > /dev/null 2>&1; then
  echo "verify passed without the man pages" >&2
  exit 1
fi

# systemd's exposure score, 0 (locked down) to 10: the server runs nothing
# but itself; the worker runs any program, so it is allowed more.
systemd-analyze security --offline=true --no-pager --threshold=25 "$server" | tail -1
systemd-analyze security --offline=true --no-pager --threshold=60 "$worker" | tail -1
