#!/usr/bin/env bash
# Set up a virtual environment with quantgate, its test tools and the optional torch extra,
# then check the code (ruff lint and format, mypy) and the GitHub workflows (zizmor), and run
# the test suite. Extra arguments go to pytest (e.g. `bash scripts/test.sh -k gate`).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,qat]'
.venv/bin/ruff check src tests bench model scripts
.venv/bin/ruff format --check src tests bench model scripts
.venv/bin/mypy
# The GitHub workflows and action.yml: pinned actions, no persisted credentials, least
# permissions, no template injection (docs/action.md#security). Offline: no GitHub API needed.
.venv/bin/zizmor --offline --no-progress .github/workflows action.yml
exec .venv/bin/python -m pytest "$@"
