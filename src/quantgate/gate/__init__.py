"""The accuracy gate: fp32 and int8 side by side on the same samples, each model's figures with
their uncertainty, judged against its budgets.

`run_gate` (registry in, `Results` out) is the entry; `gate_entry` measures one model. The
pieces: `settings` (how to measure), `measure` (the sampling loop), `estimate` (figures and
bootstrap intervals, pure numpy), `judge` (budgets and verdicts).
"""

from .run import STATUS_TAG, adhoc_entry, gate_entry, line_for, row_lines, run_gate, summary_line
from .settings import DEFAULT_SEED, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, REFERENCE_SAMPLES, GateSettings

__all__ = [
    "DEFAULT_SEED",
    "MAX_SAMPLES",
    "MAX_SECONDS",
    "MIN_SAMPLES",
    "REFERENCE_SAMPLES",
    "STATUS_TAG",
    "GateSettings",
    "adhoc_entry",
    "gate_entry",
    "line_for",
    "row_lines",
    "run_gate",
    "summary_line",
]
