#!/usr/bin/env bash
# The dashboard in a real browser: Debian's Chromium, headless, driven by
# dashboard_test.mjs through playwright-core. playwright-core (no
# dependencies of its own, no browser download) comes from npm, installed
# once into BUILD_DIR/browser-test at the version package.json pins.
# Screenshots go to BUILD_DIR/dashboard-screenshots.
# Usage: tests/browser/run.sh FERRY BUILD_DIR
set -euo pipefail
ferry=$1 build=$2
here=$(cd "$(dirname "$0")" && pwd)
chromium=${FERRY_CHROMIUM:-/usr/bin/chromium}
command -v npm > /dev/null || { echo "browser test: no node and npm (scripts/setup.sh)" >&2; exit 1; }
(($(node -p 'process.versions.node.split(".")[0]') >= 20)) ||
  { echo "browser test: playwright-core needs Node.js 20 or newer, not $(node --version)" >&2; exit 1; }
[[ -x $chromium ]] || { echo "browser test: no $chromium (scripts/setup.sh installs chromium)" >&2; exit 1; }

modules=$(realpath -m "$build/browser-test")
wanted=$(node -p "require('$here/package.json').dependencies['playwright-core']")
installed=$(node -p "try { require('$modules/node_modules/playwright-core/package.json').version }
                     catch { '' }")
if [[ $installed != "$wanted" ]]; then
  mkdir -p "$modules"
  cp "$here/package.json" "$modules/package.json"
  (cd "$modules" && npm install --no-audit --no-fund --no-package-lock --loglevel=error)
fi
node "$here/dashboard_test.mjs" "$ferry" "$modules" "$build/dashboard-screenshots" "$chromium"
