#!/usr/bin/env bash
# Set up a virtual environment with quantgate and gate the shipped example models.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
.venv/bin/quantgate validate
exec .venv/bin/quantgate gate --json-out quantgate-results.json --markdown-out quantgate-results.md
