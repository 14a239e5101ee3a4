#!/usr/bin/env bash
# Set up a virtual environment with quantgate, its test tools and the optional torch extra,
# then check the code (ruff lint and format, mypy) and run the test suite. Extra arguments go
# to pytest (e.g. `bash scripts/test.sh -k gate`).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,qat]'
.venv/bin/ruff check src tests bench model scripts
.venv/bin/ruff format --check src tests bench model scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
