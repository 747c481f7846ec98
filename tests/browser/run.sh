#!/usr/bin/env bash
# The dashboard in a real browser: Debian's Chromium, headless, driven by
# dashboard_test.mjs through playwright-core, which scripts/setup.sh installs
# from npm into tests/browser/node_modules (install.sh).
# Screenshots go to BUILD_DIR/dashboard-screenshots.
# Usage: tests/browser/run.sh FERRY BUILD_DIR
set -euo pipefail
ferry=$1 build=$2
here=$(cd "$(dirname "$0")" && pwd)
chromium=${FERRY_CHROMIUM:-/usr/bin/chromium}
command -v node > /dev/null || { echo "browser test: no Node.js (scripts/setup.sh)" >&2; exit 1; }
(($(node -p 'process.versions.node.split(".")[0]') >= 20)) ||
  { echo "browser test: playwright-core needs Node.js 20 or newer, not $(node --version)" >&2; exit 1; }
[[ -x $chromium ]] || { echo "browser test: no $chromium (scripts/setup.sh installs chromium)" >&2; exit 1; }
[[ -f $here/node_modules/playwright-core/package.json ]] ||
  { echo "browser test: no playwright-core in $here/node_modules (bash scripts/setup.sh)" >&2; exit 1; }
node "$here/dashboard_test.mjs" "$ferry" "$here" "$build/dashboard-screenshots" "$chromium"
