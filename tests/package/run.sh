#!/usr/bin/env bash
# Installs ferry into a scratch prefix, builds tests/package against it with
# find_package(ferry), and runs the result.
set -euo pipefail
build=$1 source=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
log="$scratch/log"
trap 'cat "$log" 2>/dev/null; rm -rf "$scratch"' ERR
cmake --install "$build" --prefix "$scratch/prefix" > "$log"
cmake -S "$source/tests/package" -B "$scratch/build" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" >> "$log"
cmake --build "$scratch/build" >> "$log"
"$scratch/build/consumer"
echo "find_package(ferry) works"
