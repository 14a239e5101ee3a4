"""The accuracy gate: fp32 and int8 side by side on the same samples, each model's figures with
their uncertainty, judged against its budgets.

`run_gate` (registry in, `Results` out) is the entry; `gate_entry` (`entry`) measures one
model, `pair` opens and checks its two files, `avx2` re-measures it as an AVX2-only CPU
computes. The other pieces: `settings` (how to measure), `measure` (the sampling loop),
`estimate` (figures and bootstrap intervals, pure numpy), `judge` (budgets and verdicts). The
terminal lines are `report.terminal`'s.
"""

from typing import Any

from .settings import DEFAULT_SEED, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, REFERENCE_SAMPLES, GateSettings

# name -> the module it lives in; the measuring half loads onnx and ONNX Runtime: only when used
_LAZY = {"run_gate": ".run", "gate_entry": ".entry", "adhoc_entry": ".entry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)


__all__ = [
    "DEFAULT_SEED",
    "MAX_SAMPLES",
    "MAX_SECONDS",
    "MIN_SAMPLES",
    "REFERENCE_SAMPLES",
    "GateSettings",
    "adhoc_entry",
    "gate_entry",
    "run_gate",
]
