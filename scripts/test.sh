#!/usr/bin/env bash
# Set up a virtual environment with quantgate, its test tools and the optional torch extra,
# then run the test suite. Extra arguments go to pytest (e.g. `bash scripts/test.sh -k gate`).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,qat]'
exec .venv/bin/python -m pytest "$@"
