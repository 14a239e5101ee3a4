"""Budgets and verdicts: what an output's figures and their intervals say against a model's budgets.

A budget is a threshold on one figure: the PLCC drop (always), and, when the registry sets
them, the SQNR in dB and the RMSE. With neither of those set, a sanity floor stands in for
them: the error's gain and offset part (`gain_offset`, the error 1 - PLCC cannot see) at most
5 % of the fp32 output's RMS. A gain of 1.1, or an offset of 10 % of the RMS, is 0.1 on any
output; the shipped sidecars sit at 0.0004-0.013 (bench/floor_sweep.py, docs/measurement.md).
A budget is *decided* when the figure's
interval (at the confidence the look schedule needs, 95 % over all looks) lies wholly on one side
of its threshold; a row whose budgets are not all decided when sampling stops is *marginal*.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..results import Interval, OutputFigures, Row

SANITY_GAIN_OFFSET = 0.05


@dataclass(frozen=True)
class Budget:
    figure: str  # key of the figure in an output's figures ("drop", "sqnr_db", ...)
    threshold: float
    higher_is_worse: bool
    field: str  # where it comes from: the registry field, or "sanity floor"

    def within(self, value: float) -> bool:
        return value <= self.threshold if self.higher_is_worse else value >= self.threshold

    def side(self, ci: Interval | None) -> str:
        """'within', 'over' or 'straddles' for a 95 % interval of the figure."""
        if ci is None:
            return "straddles"
        lo, hi = (ci.low, ci.high) if self.higher_is_worse else (-ci.high, -ci.low)
        t = self.threshold if self.higher_is_worse else -self.threshold
        if hi <= t:
            return "within"
        if lo > t:
            return "over"
        return "straddles"

    def describe(self, value: float) -> str:
        word = {
            "drop": "drop",
            "sqnr_db": "SQNR",
            "rmse": "RMSE",
            "rel_rmse": "error/spread",
            "gain_offset": "gain/offset error (of the output's spread)",
        }[self.figure]
        unit = " dB" if self.figure == "sqnr_db" else ""
        if self.within(value):
            return f"{word} {value:.6g}{unit} within {self.field} {self.threshold:g}{unit}"
        rel = "exceeds" if self.higher_is_worse else "is below"
        return f"{word} {value:.6g}{unit} {rel} {self.field} {self.threshold:g}{unit}"


def budgets_of(plcc: float, sqnr_db: float | None = None, rmse: float | None = None) -> tuple[Budget, ...]:
    out = [Budget("drop", plcc, True, "budget")]
    if sqnr_db is not None:
        out.append(Budget("sqnr_db", sqnr_db, False, "quant_accuracy_budget_sqnr_db"))
    if rmse is not None:
        out.append(Budget("rmse", rmse, True, "quant_accuracy_budget_rmse"))
    if sqnr_db is None and rmse is None:
        out.append(Budget("gain_offset", SANITY_GAIN_OFFSET, True, "sanity floor"))
    return tuple(out)


_RANK = {"error": 0, "fail": 1, "ok": 2}


def _figure(fig: OutputFigures, name: str) -> float | None:
    return getattr(fig, name)


def worst_output(outputs: list[OutputFigures], judged: set[str]) -> OutputFigures:
    """The judged output that did worst: an error before a fail before a figure, then the largest drop."""
    pool = [o for o in outputs if o.name in judged]
    return min(pool, key=lambda o: (_RANK[o.verdict], -(o.drop or 0.0)))


@dataclass(frozen=True)
class Verdict:
    """What `verdict` decides about a row: its status and reason, the headline figures (those of
    the judged output that did worst) and whether the budgets were decided (`marginal`)."""

    status: str
    reason: str | None
    outputs: tuple[OutputFigures, ...]
    judged_output: str
    plcc: float | None
    drop: float | None
    drop_ci: Interval | None
    max_abs_error: float | None
    worst_sample: int | None
    sqnr_db: float | None
    time_capped: bool
    headroom: float | None = None
    marginal: bool = False
    on_marginal: str | None = None

    def apply(self, row: Row) -> Row:
        """`row` with this verdict and its figures."""
        return row.with_(
            status=self.status,
            reason=self.reason,
            outputs=self.outputs,
            judged_output=self.judged_output,
            plcc=self.plcc,
            drop=self.drop,
            drop_ci=self.drop_ci,
            max_abs_error=self.max_abs_error,
            worst_sample=self.worst_sample,
            sqnr_db=self.sqnr_db,
            time_capped=self.time_capped,
            headroom=self.headroom,
            marginal=self.marginal,
            on_marginal=self.on_marginal,
        )


def verdict(
    measured, judged: set[str], budgets: tuple[Budget, ...], budget: float, on_marginal: str = "fail"
) -> Verdict:
    """The row's status, reason and headline figures from what `measure` found. A row whose
    budgets were not all decided is marginal; `on_marginal` says what it counts as: "fail" (a
    budget not shown to be met is not met), "warn" or "pass" (the point estimate decides; "warn"
    adds a warning)."""
    worst = worst_output(measured.outputs, judged)
    figures = Verdict(
        status="",
        reason=None,
        outputs=tuple(measured.outputs),
        judged_output=worst.name,
        plcc=worst.plcc,
        drop=worst.drop,
        drop_ci=worst.drop_ci,
        max_abs_error=worst.max_abs_error,
        worst_sample=worst.worst_sample,
        sqnr_db=worst.sqnr_db,
        time_capped=measured.sampling.time_capped,
    )
    if worst.verdict != "ok":
        status = "error" if worst.verdict == "error" else "fail"
        return replace(figures, status=status, reason=f"output '{worst.name}': {worst.note}")
    assert worst.drop is not None
    figures = replace(figures, headroom=budget - worst.drop)
    over = []
    for o in measured.outputs:
        if o.name not in judged or o.verdict != "ok":
            continue
        for b in budgets:
            value = _figure(o, b.figure)
            if value is None:  # an infinite SQNR or undefined ratio: int8 equals fp32
                continue
            where = f" on output '{o.name}'" if len(judged) > 1 else ""
            if not b.within(value):
                over.append(b.describe(value) + where)
    status = "fail" if over else "pass"
    reason = "; ".join(over) if over else worst.note
    if measured.decided:
        return replace(figures, status=status, reason=reason, marginal=False)
    note = _marginal_note(measured)
    if status == "pass" and on_marginal == "fail":
        note += "; counted as over budget (on-marginal fail)"
        status = "fail"
    else:
        note += f"; judged by the point estimate (on-marginal {on_marginal})"
    reason = f"{reason}; {note}" if reason else note
    return replace(figures, status=status, reason=reason, marginal=True, on_marginal=on_marginal)


def _marginal_note(measured) -> str:
    """Why a row is marginal, and what would settle it."""
    s = measured.sampling
    n = s.samples
    if s.mode == "eval set":
        settle = "a larger eval set (quant_eval_set)"
        if s.available is not None and n < s.available:
            settle = f"all {s.available:,} rows of the eval set (--max-samples)"
    elif s.time_capped:
        settle = (
            f"more time (--max-seconds), or a count pinned with quant_gate_samples (e.g. {2 * n}), which is "
            "measured the same on any machine"
        )
    elif s.mode == "fixed":
        settle = "a larger pinned count (--samples, quant_gate_samples) or an eval set (quant_eval_set)"
    else:
        settle = "more samples (--max-samples, quant_gate_samples) or an eval set (quant_eval_set)"
    capped = f"time-capped ({s.seconds:.0f} s); " if s.time_capped else ""
    return f"marginal at {n:,} samples: {capped}{measured.undecided}; {settle} would settle it"
