#!/usr/bin/env bash
# Mutation testing of the gate's decisions (bench/mutate.py): plants one small bug at a time in
# gate/judge.py, gate/measure.py, gate/figures.py, gate/estimate.py, gate/sums.py, gate/steps.py,
# registry.py, registry_read.py and inputs.py, runs
# the unit tests that reach it, and prints the score per module and the surviving mutants.
# Not part of CI (about an hour on 2 cores). Arguments go to bench/mutate.py, e.g.
#   bash scripts/mutate.sh --module judge        # one module
#   bash scripts/mutate.sh --rerun bench/results/mutate.json   # only the last run's survivors
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet -e '.[dev]'
fi
exec .venv/bin/python bench/mutate.py "$@"
