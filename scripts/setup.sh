#!/usr/bin/env bash
# Installs everything ferry needs to build and test, from Debian packages.
# Idempotent: when every package is present it changes nothing and takes no time.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev libsqlite3-dev
  libboost1.81-dev libboost-json1.81-dev libssl-dev openssl
  curl
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
