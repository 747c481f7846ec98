#!/usr/bin/env bash
# Installs ferry into a scratch prefix, builds tests/package against it with
# find_package(ferry), and runs the result; then a program of ferry::pool
# alone, with Boost, OpenSSL and fmt hidden from CMake: it needs none.
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
cmake -S "$source/tests/package" -B "$scratch/pool" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" \
  -DPOOL_ONLY=ON -DCMAKE_DISABLE_FIND_PACKAGE_Boost=ON -DCMAKE_DISABLE_FIND_PACKAGE_OpenSSL=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON >> "$log"
cmake --build "$scratch/pool" >> "$log"
"$scratch/pool/pool_consumer"
echo "find_package(ferry COMPONENTS pool) works without Boost, OpenSSL and fmt"
