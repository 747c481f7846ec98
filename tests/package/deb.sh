#!/usr/bin/env bash
# The Debian packages as `cpack -G DEB` makes them: their control data, and
# the command unpacked from them (dpkg-deb -x) started as its unit starts it:
# a server that tells systemd it is ready, a worker, a job run through both.
# Usage: deb.sh BUILD PYTHON
set -euo pipefail
build=$(cd "$1" && pwd) python=$2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
(cd "$scratch" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$scratch/out") \
  > "$scratch/cpack.log" 2>&1 || { cat "$scratch/cpack.log" >&2; exit 1; }
deb=$(ls "$scratch"/out/ferry_*.deb) dev=$(ls "$scratch"/out/ferry-dev_*.deb)
echo "made $(basename "$deb") and $(basename "$dev")"

# Control data: what it needs, and the scripts that make the token and
# start the server on installation.
dpkg-deb -f "$deb" Package Version Architecture Depends
for library in libc6 libsqlite3-0 libssl3 libsystemd0; do
  dpkg-deb -f "$deb" Depends | grep -q "$library" || { echo "Depends lacks $library" >&2; exit 1; }
done
dpkg-deb -e "$deb" "$scratch/control"
grep -q "deb-systemd-invoke start ferry-server.service" "$scratch/control/postinst"
grep -q "/etc/ferry/token" "$scratch/control/postinst"
sh -n "$scratch/control/postinst" && sh -n "$scratch/control/prerm" && sh -n "$scratch/control/postrm"

# The files, where Debian puts them.
dpkg-deb -x "$deb" "$scratch/root"
dpkg-deb -x "$dev" "$scratch/root"
root=$scratch/root
for file in usr/bin/ferry usr/lib/systemd/system/ferry-server.service \
  usr/lib/systemd/system/ferry-worker@.service usr/share/man/man1/ferry.1.gz \
  usr/share/man/man1/ferry-server.1.gz usr/share/doc/ferry/README.md usr/include/ferry/pool.hpp \
  usr/lib/cmake/ferry/ferryConfig.cmake usr/lib/libferry_pool.a; do
  [[ -e $root/$file ]] || { echo "the packages lack /$file" >&2; exit 1; }
done
grep -q '^ExecStart=/usr/bin/ferry server ' "$root/usr/lib/systemd/system/ferry-server.service"
"$root/usr/bin/ferry" --version

# The packaged units pass verify with their binary and man pages (the
# path of the unpacked binary in place of /usr/bin/ferry).
mkdir "$scratch/units"
for unit in ferry-server.service ferry-worker@.service; do
  sed "s|^ExecStart=/usr/bin/ferry|ExecStart=$root/usr/bin/ferry|" \
    "$root/usr/lib/systemd/system/$unit" > "$scratch/units/$unit"
done
MANPATH=$root/usr/share/man systemd-analyze verify "$scratch/units/"*.service

# Started as the unit starts it (a credential file for the token, a state
# directory), on a free port; ready as Type=notify expects.
ferry=$root/usr/bin/ferry
mkdir -p "$scratch/credentials" "$scratch/state/ferry"
echo "packaged-token" > "$scratch/credentials/token"
chmod 600 "$scratch/credentials/token"
"$python" "$here/notify_socket.py" "$scratch/notify.sock" > "$scratch/notify.out" &
pids+=($!)
for _ in $(seq 200); do grep -q listening "$scratch/notify.out" 2> /dev/null && break; sleep 0.05; done
NOTIFY_SOCKET=$scratch/notify.sock "$ferry" server --listen 127.0.0.1:0 \
  --db "$scratch/state/ferry/ferry.db" --token-file "$scratch/credentials/token" \
  --address-file "$scratch/address" 2> "$scratch/server.log" &
pids+=($!)
for _ in $(seq 400); do grep -q READY=1 "$scratch/notify.out" && break; sleep 0.05; done
grep -q READY=1 "$scratch/notify.out" || { cat "$scratch/server.log" >&2; exit 1; }
export FERRY_SERVER=$(cat "$scratch/address")
"$ferry" worker --token-file "$scratch/credentials/token" --slots 1 2> "$scratch/worker.log" &
pids+=($!)
id=$("$ferry" submit --token-file "$scratch/credentials/token" -- echo "from the package")
"$ferry" wait --token-file "$scratch/credentials/token" --timeout 60 "$id"
[[ $("$ferry" logs --token-file "$scratch/credentials/token" "$id") == "from the package" ]]
echo "the packaged ferry ran job $id through its server and worker"
