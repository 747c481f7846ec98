#!/usr/bin/env bash
# Installs everything ferry needs to build and test, from Debian packages.
# Idempotent: when every package is present it changes nothing and takes no time.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev libsqlite3-dev libpq-dev postgresql-15
  libboost1.81-dev libboost-json1.81-dev libssl-dev openssl
  libyaml-cpp-dev libzip-dev
  curl iproute2
)

source "$(dirname "$0")/debian_packages.sh"
install_packages "${packages[@]}"
