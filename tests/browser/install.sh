#!/usr/bin/env bash
# Installs the browser test's npm packages (playwright-core alone: no
# dependencies of its own, no browser download; the test drives Debian's
# Chromium) into tests/browser/node_modules, at the versions package.json
# pins. Idempotent: when they are there at those versions it does nothing.
# Run by scripts/setup.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v npm > /dev/null || { echo "browser test: no npm (scripts/setup.sh installs it)" >&2; exit 1; }
wanted=$(node -p "require('$here/package.json').dependencies['playwright-core']")
installed=$(node -p "try { require('$here/node_modules/playwright-core/package.json').version }
                     catch { '' }")
[[ $installed == "$wanted" ]] && exit 0
echo "installing playwright-core $wanted from npm into tests/browser/node_modules"
(cd "$here" && npm install --no-audit --no-fund --no-package-lock --no-save --loglevel=error)
