#!/usr/bin/env bash
# Installs everything ferry needs to build and test, from Debian packages.
# Idempotent: when every package is present it changes nothing and takes no time.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev libsqlite3-dev
  libboost1.81-dev libboost-json1.81-dev libssl-dev openssl
  libyaml-cpp-dev libzip-dev
  curl
  # readiness for systemd; the units' and the Debian package's tests
  libsystemd-dev systemd man-db dpkg-dev file
  # the Python client, its tests and `pip install ./clients/python` (offline)
  python3 python3-venv python3-setuptools python3-wheel
)

source "$(dirname "$0")/debian_packages.sh"
install_packages "${packages[@]}"
