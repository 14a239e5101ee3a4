"""The accuracy gate: fp32 and int8 side by side on the same samples, each model's figures with
their uncertainty, judged against its budgets.

`run_gate` (registry in, `Results` out) is the entry; `gate_entry` measures one model. The
pieces: `settings` (how to measure), `measure` (the sampling loop), `estimate` (figures and
bootstrap intervals, pure numpy), `judge` (budgets and verdicts).
"""

from typing import Any

from .settings import DEFAULT_SEED, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, REFERENCE_SAMPLES, GateSettings

_RUN = ("STATUS_TAG", "adhoc_entry", "gate_entry", "line_for", "row_lines", "run_gate", "summary_line")


def __getattr__(name: str) -> Any:  # the measuring half loads onnx and ONNX Runtime: only when used
    if name in _RUN:
        from . import run

        return getattr(run, name)
    raise AttributeError(name)


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
