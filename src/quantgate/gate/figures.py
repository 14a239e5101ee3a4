"""One output's figures at a look, from its sums and their estimate (`estimate`): the branches
that decide an output's own verdict before any budget (sizes that differ, NaN or inf, an empty
output, a constant one), the reference method's PLCC, and at the last look what a
constant-looking output comes to (`settle`). `measure` calls them at every look.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..results import OutputFigures
from ..rowblocks import Interval
from . import estimate
from .estimate import Estimate
from .sums import OutputSums

CONSTANT_EXACT = "constant output, int8 identical to fp32"


def output_figures(name: str, judged: bool, s: OutputSums, est: Estimate | None, kept) -> OutputFigures:
    def bad(verdict: str, note: str) -> OutputFigures:
        return OutputFigures(name=name, judged=judged, verdict=verdict, note=note)

    if s.size_mismatch:
        i, a, b = s.size_mismatch
        return bad("error", f"int8 output has {b} values, fp32 has {a} (sample {i})")
    if s.fp32_nonfinite is not None:
        return bad(
            "error",
            f"fp32 output has NaN or inf on gate input {s.fp32_nonfinite}; set quant_inputs ranges the model is "
            "meant for",
        )
    if s.int8_nonfinite is not None:
        return bad("fail", f"int8 output has NaN or inf where fp32 is finite (sample {s.int8_nonfinite})")
    if est is None or s.samples == 0:
        return bad("error", "output is empty")
    p, iv = est.point, est.intervals
    fp_range = s.fp32_max - s.fp32_min
    rel = s.max_abs_error / fp_range if fp_range > 0 else None
    base = OutputFigures(
        name=name,
        judged=judged,
        verdict="ok",
        max_abs_error=_finite(s.max_abs_error),
        max_abs_error_rel=rel,
        worst_sample=s.worst_sample,
        sqnr_db=_finite(p["sqnr_db"]),
        sqnr_db_ci=iv["sqnr_db"],
        nmse=_finite(p["nmse"]),
        rmse=_finite(p["rmse"]),
        rmse_ci=iv["rmse"],
        rel_rmse=_finite(p["rel_rmse"]),
        rel_rmse_ci=iv["rel_rmse"],
        gain_offset=_finite(p["gain_offset"]),
        gain_offset_ci=iv["gain_offset"],
        samples=s.samples,
    )
    fp_const, q_const = fp_range == 0.0, s.int8_max == s.int8_min
    if fp_const or q_const:
        # decided only at the last look (`_settle`): a difference on one input in thousands shows late
        if fp_const and s.max_abs_error == 0.0:
            return replace(base, plcc=1.0, drop=0.0, note=CONSTANT_EXACT)
        if fp_const and q_const:
            why = f"constant output differs: fp32 {s.fp32_min:.6g}, int8 {s.int8_min:.6g}"
        elif fp_const:
            why = (
                f"constant fp32 output ({s.fp32_min:.6g}) but int8 varies (worst error {s.max_abs_error:.4g} "
                f"on sample {s.worst_sample})"
            )
        else:
            why = f"constant int8 output ({s.int8_min:.6g}) while fp32 varies: quantisation collapsed it"
        return replace(base, note=why)
    plcc: float | None = p["plcc"]
    drop: float | None = p["drop"]
    if kept:  # the reference method: numpy.corrcoef over the concatenated values, to the last digit
        plcc = estimate.reference_plcc(np.concatenate(kept[0]), np.concatenate(kept[1]))
        drop = 1.0 - plcc
    if plcc is None or drop is None or not np.isfinite(plcc):
        return replace(base, verdict="fail", note="PLCC is not finite")
    return replace(base, plcc=float(plcc), drop=float(drop), drop_ci=iv["drop"])


def settle(fig: OutputFigures, samples: int) -> OutputFigures:
    """At the last look a constant-looking output becomes its verdict: identical on every sample
    passes (with how rare a difference could still be), a difference fails."""
    if not (fig.note and fig.note.startswith("constant")) or fig.verdict != "ok":
        return fig
    if fig.note == CONSTANT_EXACT:
        exact = Interval(0.0, 0.0)
        horizon = math.ceil(samples / 3)
        note = (
            f"{CONSTANT_EXACT} on all {samples} samples (a difference on fewer than 1 input in {horizon:,} "
            "could still be there, 95 %)"
        )
        return replace(fig, drop_ci=exact, rmse_ci=exact, note=note)
    return replace(fig, verdict="fail")


def _finite(v: float | None) -> float | None:
    return v if v is not None and np.isfinite(v) else None
