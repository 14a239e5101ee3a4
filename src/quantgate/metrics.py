"""Fidelity figures of an int8 output against its fp32 reference — pure numpy, no ONNX Runtime.

`drop = 1 - PLCC` is what the budget judges (PLCC as `numpy.corrcoef` computes it on the
flattened, concatenated outputs). PLCC is blind to gain and offset drift, so the worst absolute
error and the SQNR (dB) travel with it. Constant and non-finite outputs get explicit verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Comparison:
    plcc: float | None
    drop: float | None
    max_abs_error: float | None
    max_abs_error_rel: float | None  # relative to the fp32 output's range
    sqnr_db: float | None  # None when int8 == fp32 exactly (infinite)
    nmse: float | None
    verdict: str  # "ok" (judge drop against budget), "fail" (fails whatever the budget), "error"
    note: str | None = None


def _f(x) -> float:
    return float(x)


def compare(fp32: np.ndarray, int8: np.ndarray) -> Comparison:
    fp = np.asarray(fp32).ravel()
    q = np.asarray(int8).ravel()
    if fp.shape != q.shape:
        return Comparison(
            None, None, None, None, None, None, "error", f"int8 output has {q.size} values, fp32 has {fp.size}"
        )
    if fp.size == 0:
        return Comparison(None, None, None, None, None, None, "error", "output is empty")
    if not np.all(np.isfinite(fp.astype(np.float64))):
        return Comparison(
            None,
            None,
            None,
            None,
            None,
            None,
            "error",
            "fp32 output has NaN or inf on the gate inputs; set quant_inputs ranges the model is meant for",
        )
    fp64 = fp.astype(np.float64)
    q64 = q.astype(np.float64)
    if not np.all(np.isfinite(q64)):
        return Comparison(None, None, None, None, None, None, "fail", "int8 output has NaN or inf where fp32 is finite")
    err = q64 - fp64
    max_abs = _f(np.max(np.abs(err)))
    rng_fp = _f(np.ptp(fp64))
    signal = _f(np.sum(fp64 * fp64))
    noise = _f(np.sum(err * err))
    sqnr = None if noise == 0.0 else (10.0 * np.log10(signal / noise) if signal > 0 else -np.inf)
    sqnr = None if sqnr is None else _f(sqnr)
    if sqnr is not None and not np.isfinite(sqnr):
        sqnr = None
    nmse = None if signal == 0 else noise / signal
    rel = max_abs / rng_fp if rng_fp > 0 else None
    fp_const, q_const = rng_fp == 0.0, _f(np.ptp(q64)) == 0.0
    if fp_const or q_const:
        if fp_const and np.array_equal(fp64, q64):
            return Comparison(1.0, 0.0, 0.0, rel, None, nmse, "ok", "constant output, int8 identical to fp32")
        if fp_const and q_const:
            why = f"constant output differs: fp32 {fp64[0]:.6g}, int8 {q64[0]:.6g}"
        elif fp_const:
            why = f"fp32 output is constant ({fp64[0]:.6g}) but int8 varies (worst error {max_abs:.4g})"
        else:
            why = f"int8 output is constant ({q64[0]:.6g}) while fp32 varies: quantisation collapsed it"
        return Comparison(None, None, max_abs, rel, sqnr, nmse, "fail", why)
    # np.corrcoef on the raw arrays: the first user's published drops were computed this way.
    plcc = _f(np.corrcoef(fp, q)[0, 1])
    if not np.isfinite(plcc):
        return Comparison(None, None, max_abs, rel, sqnr, nmse, "fail", "PLCC is not finite")
    return Comparison(plcc, 1.0 - plcc, max_abs, rel, sqnr, nmse, "ok")
