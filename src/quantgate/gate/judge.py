"""Budgets and verdicts: what an output's figures and their intervals say against a model's budgets.

A budget is a threshold on one figure: the PLCC drop (always), and, when the registry sets
them, the SQNR in dB and the RMSE. With neither of those set, a sanity floor stands in for
them: `rel_rmse` at most 1, i.e. int8's error no larger than the fp32 output's own spread —
the gain or offset error that 1 - PLCC cannot see. A budget is *decided* when the figure's
95 % interval lies wholly on one side of its threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..results import Interval, OutputFigures

SANITY_REL_RMSE = 1.0


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
        word = {"drop": "drop", "sqnr_db": "SQNR", "rmse": "RMSE", "rel_rmse": "error/spread"}[self.figure]
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
        out.append(Budget("rel_rmse", SANITY_REL_RMSE, True, "sanity floor"))
    return tuple(out)


_RANK = {"error": 0, "fail": 1, "ok": 2}


def _figure(fig: OutputFigures, name: str) -> float | None:
    return getattr(fig, name)


def _interval(fig: OutputFigures, name: str) -> Interval | None:
    return getattr(fig, f"{name}_ci")


def worst_output(outputs: list[OutputFigures], judged: set[str]) -> OutputFigures:
    """The judged output that did worst: an error before a fail before a figure, then the largest drop."""
    pool = [o for o in outputs if o.name in judged]
    return min(pool, key=lambda o: (_RANK[o.verdict], -(o.drop or 0.0)))


def verdict(measured, judged: set[str], budgets: tuple[Budget, ...], budget: float) -> dict:
    """The row's status, reason and headline figures from what `measure` found."""
    worst = worst_output(measured.outputs, judged)
    row = {
        "outputs": tuple(measured.outputs),
        "judged_output": worst.name,
        "plcc": worst.plcc,
        "drop": worst.drop,
        "drop_ci": worst.drop_ci,
        "max_abs_error": worst.max_abs_error,
        "sqnr_db": worst.sqnr_db,
    }
    if worst.verdict != "ok":
        return {
            **row,
            "status": "error" if worst.verdict == "error" else "fail",
            "reason": f"output '{worst.name}': {worst.note}",
        }
    assert worst.drop is not None
    row["headroom"] = budget - worst.drop
    over, straddling = [], []
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
            if b.side(_interval(o, b.figure)) == "straddles":
                straddling.append((b, o))
    marginal = bool(straddling) and not measured.decided
    status = "fail" if over else "pass"
    reason = "; ".join(over) if over else worst.note
    if marginal:
        b, o = straddling[0]
        ci = _interval(o, b.figure)
        shown = f"[{ci.low:.6g}, {ci.high:.6g}]" if ci else "undefined"
        n = measured.sampling.samples
        settle = (
            "a larger eval set"
            if measured.sampling.mode == "eval set"
            else "an eval set (quant_eval_set) or more samples (quant_gate_samples)"
        )
        note = (
            f"marginal: the 95% interval of the {b.figure} {shown} straddles {b.threshold:g} at {n} samples; "
            f"judged by the point estimate; {settle} would settle it"
        )
        reason = f"{reason}; {note}" if reason else note
    return {**row, "status": status, "reason": reason, "marginal": marginal}
