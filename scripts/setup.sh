#!/usr/bin/env bash
# Installs everything ferry needs to build and test: Debian packages, and the
# browser test's npm package.
# Idempotent: when everything is present it changes nothing and takes no time.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev libsqlite3-dev libpq-dev postgresql-15
  libboost1.81-dev libboost-json1.81-dev libssl-dev openssl
  libyaml-cpp-dev libzip-dev
  tzdata
  curl iproute2
  clang-14 libclang-rt-14-dev llvm-14
  chromium    # the dashboard's browser test (headless; tests/browser)
  prometheus  # its promtool checks the server's /metrics in a test
  # readiness for systemd; the units' and the Debian package's tests
  libsystemd-dev systemd man-db dpkg-dev file
  # the Python client, its tests and `pip install ./clients/python` (offline)
  python3 python3-venv python3-setuptools python3-wheel
)
# The browser test runs on Node.js 20 or newer, with npm; a machine that has
# them (as a package of its own) keeps them.
command -v npm > /dev/null || packages+=(nodejs npm)

source "$(dirname "$0")/debian_packages.sh"
install_packages "${packages[@]}"

# The browser test's npm packages (pinned in tests/browser/package.json).
bash "$(dirname "$0")/../tests/browser/install.sh"
