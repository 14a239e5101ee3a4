"""Run fp32 and int8 side by side on a stream of samples until the figures can be trusted.

Samples are drawn, run and folded into per-sample sums one at a time, so no input set is ever
held whole. With adaptive sampling (the default) the count starts at `min_samples` and doubles
until every budget is decided (its 95 % interval on one side of the threshold) and the drop is
known precisely, or a cap is reached: `max_samples`, or `max_seconds` of run time, which is the
one stop that depends on the machine's speed and is recorded as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from ..metrics import compare
from ..results import Interval, OutputFigures
from . import estimate
from .estimate import OutputSums
from .judge import Budget
from .settings import GateSettings

# The drop is precise enough when its interval's half-width is at most this share of it,
# or this share of the budget (so a drop far below the budget needs no more samples than that).
REL_PRECISION = 0.05
ABS_PRECISION = 1e-4
# Fewest samples an interval is computed from when the time cap stops a slow model early.
MIN_FOR_INTERVAL = 16


@dataclass
class Sampling:
    """How many samples were measured and why the measurement stopped."""

    mode: str  # "adaptive", "fixed", "eval set"
    samples: int = 0
    stopped: str = ""  # "decided", "sample cap", "time cap", "fixed", "eval set exhausted", "verdict"
    steps: list[int] = field(default_factory=list)
    seconds: float = 0.0
    bootstrap_seed: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "samples": self.samples,
            "stopped": self.stopped,
            "steps": self.steps,
            "bootstrap": {
                "replicates": estimate.BOOTSTRAP_REPLICATES,
                "confidence": estimate.CONFIDENCE,
                "seed": self.bootstrap_seed,
            },
        }


@dataclass
class Measured:
    outputs: list[OutputFigures]
    sampling: Sampling
    decided: bool


def schedule(settings: GateSettings, fixed: int | None) -> list[int]:
    """The sample counts at which the figures are evaluated."""
    if fixed is not None:
        return [fixed]
    steps, n = [], settings.min_samples
    while n < settings.max_samples:
        steps.append(n)
        n *= 2
    return [*steps, settings.max_samples]


def measure(
    run_pair: Callable[[dict, int], tuple[list, list]],
    names: list[str],
    judged: set[str],
    feeds: Iterator[dict],
    budgets: tuple[Budget, ...],
    settings: GateSettings,
    *,
    fixed: int | None,
    mode: str,
    keep_values: bool = False,
) -> Measured:
    """Feed samples from `feeds` to both sides (`run_pair(feed, index)` -> fp32 outputs, int8
    outputs) and evaluate at each step of the schedule."""
    sums = {n: OutputSums() for n in names}
    kept: dict[str, tuple[list, list]] = {n: ([], []) for n in names} if keep_values else {}
    boot_seed = [settings.seed, 0xB007]
    sampling = Sampling(mode=mode, bootstrap_seed=boot_seed)
    started = time.perf_counter()
    done, outputs, decided = 0, [], False
    for target in schedule(settings, fixed):
        exhausted = timed_out = False
        while done < target:
            feed = next(feeds, None)
            if feed is None:
                exhausted = True
                break
            y_fp, y_q = run_pair(feed, done)
            for n, a, b in zip(names, y_fp, y_q, strict=True):
                sums[n].add(a, b)
                if keep_values:
                    kept[n][0].append(np.asarray(a).ravel())
                    kept[n][1].append(np.asarray(b).ravel())
            done += 1
            if fixed is None and done >= MIN_FOR_INTERVAL and time.perf_counter() - started > settings.max_seconds:
                timed_out = True
                break
        sampling.steps.append(done)
        outputs, decided, precise, final = _evaluate(sums, kept, names, judged, budgets, boot_seed)
        if final:
            sampling.stopped = "verdict"
        elif fixed is not None:
            sampling.stopped = "eval set" if mode == "eval set" else "fixed"
        elif decided and precise:
            sampling.stopped = "decided"
        elif timed_out:
            sampling.stopped = "time cap"
        elif exhausted:
            sampling.stopped = "eval set exhausted"
        if sampling.stopped or exhausted:
            break
    sampling.stopped = sampling.stopped or "sample cap"
    sampling.samples = done
    sampling.seconds = time.perf_counter() - started
    return Measured(outputs, sampling, decided)


CONSTANT_EXACT = "constant output, int8 identical to fp32"


def _evaluate(sums, kept, names, judged, budgets, boot_seed):
    """(figures of every output, decided, precise, final): `final` when a verdict needs no more
    samples (an output that is constant, empty or not finite)."""
    n_samples = max((s.samples for s in sums.values()), default=0)
    weights = estimate.resample_weights(n_samples, boot_seed) if n_samples > 1 else None
    outputs, sides, precise, final = [], [], True, False
    for n in names:
        fig = _output_figures(n, n in judged, sums[n], weights, kept.get(n))
        outputs.append(fig)
        if fig.verdict != "ok":
            final = final or n in judged
            continue
        if n not in judged:
            continue
        # a figure with no value is undefined because int8 equals fp32 there (infinite SQNR, no spread)
        sides += [b.side(_ci(fig, b.figure)) for b in budgets if getattr(fig, b.figure) is not None]
        ci = fig.drop_ci
        if ci is None or fig.drop is None:
            precise = False
        else:
            drop_budget = next(b.threshold for b in budgets if b.figure == "drop")
            precise = precise and ci.half_width <= max(REL_PRECISION * fig.drop, ABS_PRECISION * drop_budget)
    # One budget firmly over decides a fail; a pass needs every budget firmly within.
    decided = "over" in sides or all(side == "within" for side in sides)
    return outputs, decided, precise, final


def _ci(fig: OutputFigures, figure: str) -> Interval | None:
    return {"drop": fig.drop_ci, "sqnr_db": fig.sqnr_db_ci, "rmse": fig.rmse_ci, "rel_rmse": fig.rel_rmse_ci}[figure]


def _output_figures(name: str, judged: bool, s: OutputSums, weights, kept) -> OutputFigures:
    def bad(verdict: str, note: str) -> OutputFigures:
        return OutputFigures(name=name, judged=judged, verdict=verdict, note=note)

    if s.size_mismatch:
        a, b = s.size_mismatch
        return bad("error", f"int8 output has {b} values, fp32 has {a}")
    if s.fp32_nonfinite:
        return bad(
            "error", "fp32 output has NaN or inf on the gate inputs; set quant_inputs ranges the model is meant for"
        )
    if s.int8_nonfinite:
        return bad("fail", "int8 output has NaN or inf where fp32 is finite")
    if s.samples == 0:
        return bad("error", "output is empty")
    p = estimate.point(s)
    reps = estimate.replicates(s, weights) if weights is not None else None
    jack = estimate.jackknife(s) if weights is not None else None

    def ci(key: str) -> Interval | None:
        if reps is None or jack is None:
            return None
        return estimate.interval(reps[key], p[key], jack[key])

    fp_range = s.fp32_max - s.fp32_min
    rel = s.max_abs_error / fp_range if fp_range > 0 else None
    base = OutputFigures(
        name=name,
        judged=judged,
        verdict="ok",
        max_abs_error=s.max_abs_error,
        max_abs_error_rel=rel,
        sqnr_db=_finite(p["sqnr_db"]),
        sqnr_db_ci=ci("sqnr_db"),
        nmse=_finite(p["nmse"]),
        rmse=p["rmse"],
        rmse_ci=ci("rmse"),
        rel_rmse=_finite(p["rel_rmse"]),
        rel_rmse_ci=ci("rel_rmse"),
        samples=s.samples,
    )
    fp_const, q_const = fp_range == 0.0, s.int8_max == s.int8_min
    if fp_const or q_const:
        if fp_const and s.max_abs_error == 0.0:
            exact = Interval(0.0, 0.0)  # every sample agrees to the bit: nothing to estimate
            return replace(base, plcc=1.0, drop=0.0, drop_ci=exact, rmse_ci=exact, note=CONSTANT_EXACT)
        if fp_const and q_const:
            why = f"constant output differs: fp32 {s.fp32_min:.6g}, int8 {s.int8_min:.6g}"
        elif fp_const:
            why = f"fp32 output is constant ({s.fp32_min:.6g}) but int8 varies (worst error {s.max_abs_error:.4g})"
        else:
            why = f"int8 output is constant ({s.int8_min:.6g}) while fp32 varies: quantisation collapsed it"
        return replace(base, verdict="fail", note=why)
    plcc: float | None = p["plcc"]
    drop: float | None = p["drop"]
    if kept:  # the reference method: numpy.corrcoef over the concatenated values, to the last digit
        c = compare(np.concatenate(kept[0]), np.concatenate(kept[1]))
        plcc, drop = c.plcc, c.drop
    if plcc is None or drop is None or not np.isfinite(plcc):
        return replace(base, verdict="fail", note="PLCC is not finite")
    return replace(base, plcc=float(plcc), drop=float(drop), drop_ci=ci("drop"))


def _finite(v: float) -> float | None:
    return v if np.isfinite(v) else None
