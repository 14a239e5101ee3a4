"""The gate's estimator on seeded synthetic data: how often its intervals cover the true drop,
and how often its verdicts are wrong, for error distributions from Gaussian to rare outliers.

`tests/unit/test_coverage.py` runs it small (under a minute) and fails when coverage drops below
93 %; `bench/coverage.py` runs it large for the table in docs/measurement.md. Nothing here is
used by the gate itself.

Each trial is one scalar output: fp32 x ~ N(0, 1) per sample, int8 y = x + SIGMA * e with e of
unit variance from a family below, drawn independently of x. The true drop is then known in
closed form, 1 - 1/sqrt(1 + SIGMA^2), not estimated with the formula the gate uses. The samples
go through the gate's own code: `OutputSums` for the rows, `estimate` for the jackknife, the BCa
interval and the tail allowance, `measure.plan_looks` and `measure.decide` for the schedule and
the verdict. Only the bootstrap replicates are computed for many trials at once (one matrix
product over trials with the very weights the gate draws; `test_coverage.py` checks they equal
the gate's own).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..results import Interval, OutputFigures
from . import estimate, sums
from .judge import Budget
from .settings import GateSettings

SIGMA = 0.14
TRUE_DROP = 1.0 - 1.0 / math.sqrt(1.0 + SIGMA * SIGMA)
BOOT_SEED = GateSettings(seed=0).bootstrap_seed  # the gate's bootstrap seed at --seed 0


@dataclass(frozen=True)
class Family:
    name: str
    about: str
    draw: Callable[[np.random.Generator, int], np.ndarray]  # unit-variance errors


def _gaussian(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _t3(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_t(3, n) / math.sqrt(3.0)  # Student's t(3) has variance 3; kurtosis infinite


def _kurtosis45(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian errors, 1 % of them replaced by -8|z|: kurtosis about 46 and skew -3.8, as the
    per-sample error of the shipped nr_metric_v1 (45.7 and -4.6, 262,144 samples)."""
    q, k = 0.01, 8.0
    z = rng.standard_normal(n)
    e = np.where(rng.random(n) < q, -k * np.abs(z), z)
    mean = -q * k * math.sqrt(2.0 / math.pi)
    return (e - mean) / math.sqrt((1 - q) + q * k * k - mean * mean)


def _outliers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian errors plus, on 0.2 % of samples, an error of -OUTLIER standard deviations (int8
    collapsing on rare inputs): those samples carry most of the drop."""
    q, k = 0.002, OUTLIER
    e = rng.standard_normal(n) + np.where(rng.random(n) < q, -k, 0.0)
    return (e + q * k) / math.sqrt(1.0 + q * (1 - q) * k * k)


OUTLIER = 30.0

FAMILIES = {
    f.name: f
    for f in (
        Family("gaussian", "Gaussian", _gaussian),
        Family("t3", "Student t(3)", _t3),
        Family("kurtosis45", "kurtosis 46, 1 % skewed contamination", _kurtosis45),
        Family("outliers", f"0.2 % outlier samples (-{OUTLIER:g} sd)", _outliers),
    )
}


def matrices(family: Family, trials: int, ns: list[int], seed: int) -> dict[int, np.ndarray]:
    """n -> (trials, rows, COLUMNS): the rows the gate's `OutputSums` holds after the first n
    samples of each of `trials` independent runs (one row per sample up to 2 * ROW_CAP, blocks
    of consecutive samples past that, as in the gate)."""
    ns = sorted(ns)
    out: dict[int, list[np.ndarray]] = {n: [] for n in ns}
    for t in range(trials):
        rng = np.random.default_rng([seed, t, sum(map(ord, family.name))])
        s = sums.OutputSums()
        done = 0
        for n in ns:
            x = rng.standard_normal(n - done)
            y = x + SIGMA * family.draw(rng, n - done)
            s.add_many(x[:, None], y[:, None])  # values scaled by a power of two: the drop does not change
            done = n
            out[n].append(s.matrix().copy())
    return {n: np.stack(ms) for n, ms in out.items()}


def drop_replicates(prefix: np.ndarray) -> np.ndarray:
    """(trials, replicates) bootstrap drops of each trial's rows `prefix` (trials, rows, COLUMNS),
    with the weights the gate draws for that many rows."""
    trials, n, _ = prefix.shape
    out = np.empty((trials, estimate.BOOTSTRAP_REPLICATES))
    for done, w in estimate.replicate_weights(n, BOOT_SEED):
        tb = np.einsum("bn,tnk->tbk", w, prefix, optimize=True)
        out[:, done : done + len(w)] = estimate.figures(tb)["drop"]
    return out


@dataclass
class Looked:
    """One trial at one sample count: the gate's linear figures and its replicates of the drop."""

    lin: estimate.Linear
    reps: np.ndarray

    def interval(self, level: float, allowance: float = estimate.TAIL_ALLOWANCE, bca: bool = True) -> Interval | None:
        p = self.lin.point["drop"]
        assert self.lin.jack is not None
        ci = estimate.interval(self.reps, p if bca else None, self.lin.jack["drop"] if bca else None, level)
        return estimate.widen("drop", ci, p, self.lin.allowance["drop"], allowance)


def looked(mats: dict[int, np.ndarray]) -> dict[int, list[Looked]]:
    """Every trial at every count of `mats` (prefixes of its samples, as the gate's looks are)."""
    out = {}
    for n, m in mats.items():
        reps = drop_replicates(m)
        out[n] = [Looked(estimate.linear_rows(m[t]), reps[t]) for t in range(len(m))]
    return out


METHODS = {
    "gate": {"allowance": estimate.TAIL_ALLOWANCE, "bca": True},  # what the gate does
    "bca": {"allowance": 0.0, "bca": True},  # the previous release
    "percentile": {"allowance": 0.0, "bca": False},
}


def coverage(at: dict[int, list[Looked]], truth: float = TRUE_DROP) -> dict[tuple[int, str], tuple[int, int, int]]:
    """(n, method) -> (interval below the truth, covering it, above it) counts at 95 %."""
    out = {}
    for n, trials in at.items():
        for name, how in METHODS.items():
            below = cover = above = 0
            for lk in trials:
                ci = lk.interval(estimate.CONFIDENCE, **how)  # type: ignore[arg-type]
                if ci is None or ci.high < truth:
                    below += 1
                elif ci.low > truth:
                    above += 1
                else:
                    cover += 1
            out[(n, name)] = (below, cover, above)
    return out


@dataclass
class Verdict:
    """One simulated gate run: where it stopped and what it decided."""

    samples: int
    decision: str  # "within", "over", "" (marginal)
    point_within: bool  # the point estimate is within the budget


def plan(at: dict[int, list[Looked]], t: int, budget: float, pilot: int, cap: int) -> list[int]:
    """The looks the gate plans for trial `t` after its pilot."""
    from .measure import pass_floor, plan_looks

    budgets = (Budget("drop", budget, True, "budget"),)
    return plan_looks([at[pilot][t].lin], budgets, pilot, cap, pass_floor(2, pilot))


def verdicts(at: dict[int, list[Looked]], budget: float, pilot: int, cap: int) -> list[Verdict]:
    """The gate's adaptive sampling (pilot, planned looks, decision) on every trial of `at`, which
    must hold the pilot and every power-of-two multiple of it up to `cap`. A sample here is one
    value on each side, so the pass floor is the gate's for a scalar model."""
    from .measure import decide, pass_floor, stops

    budgets = (Budget("drop", budget, True, "budget"),)
    floors = (pilot, pass_floor(2, pilot))
    out = []
    for t in range(len(at[pilot])):
        looks = plan(at, t, budget, pilot, cap)
        level = estimate.look_level(tuple(looks))
        decision, n = "", looks[-1]
        for n in looks:
            lk = at[n][t]
            fig = OutputFigures(
                name="y", judged=True, verdict="ok", drop=lk.lin.point["drop"], drop_ci=lk.interval(level)
            )
            decision, precise, _final, _why = decide([fig], {"y"}, budgets, level, n, floors)
            if stops(decision, precise):
                break
        out.append(Verdict(n, decision, at[n][t].lin.point["drop"] <= budget))
    return out


def pass_rate(runs: list[Verdict], policy: str) -> float:
    """Share of runs that pass under an --on-marginal policy."""
    ok = sum(v.decision == "within" or (v.decision == "" and policy != "fail" and v.point_within) for v in runs)
    return ok / len(runs)
