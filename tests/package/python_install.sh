#!/usr/bin/env bash
# `pip install ./clients/python` into a new virtual environment, then the
# package used from elsewhere. Offline, as here: pip builds it with the
# system's setuptools (--no-build-isolation) and looks at no index.
# Usage: python_install.sh PYTHON CLIENT_SOURCE
set -euo pipefail
python=$1 source=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$source" "$scratch/source"  # pip writes build files beside the sources
"$python" -m venv --system-site-packages "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --no-index --no-build-isolation "$scratch/source"
rm -rf "$scratch/source"
cd "$scratch"
"$scratch/venv/bin/python" - << 'PYTHON'
import sys
import ferry
assert ferry.__file__.startswith(sys.prefix), ferry.__file__
assert sys.version_info >= (3, 9)
for name in ("Client", "Worker", "Result", "ApiError", "NotFound", "TimeoutError"):
    assert hasattr(ferry, name), name
print(f"pip installed ferry {ferry.__version__} into {sys.prefix}")
PYTHON
