"""Run fp32 and int8 side by side on a stream of samples until the verdict can be trusted.

Samples are drawn, run and folded into per-sample sums as they come (`sums.OutputSums`), so
no input set is ever held whole. The schedule, for adaptive sampling (the default):

1. a **pilot** of `min_samples` (32): its figures, their standard errors and tail allowances
   (no resampling) say how many samples the verdict will need — the first **look**, rounded up
   to a power of two, and for a pass at least the **pass floor** (`pass_floor`: as many samples
   as put `PASS_FLOOR_ELEMENTS` input and output values through the model, at most
   `PASS_FLOOR_MAX`; fewer samples cannot see failures on a few inputs in a thousand). A slow
   model whose every sample is a precise figure (a 50k-element image) needs tens of samples;
2. looks at that count, then doubling, up to `max_samples`. Each look's intervals use the
   confidence that keeps the chance of *any* look deciding wrongly at 5 % (`estimate.look_level`);
3. a look **decides** when every judged budget's interval lies on one side of its threshold
   (one firmly over is enough for a fail). A pass also waits until the drop's 95 % half-width is
   at most `PRECISION` of the budget, so the figure barely moves with the seed; a fail stops at
   once.

Below `min_samples` no verdict is decided (a row measured on fewer is marginal by construction).
A constant-looking output decides nothing either: it samples on to the cap, since a difference
on one input in thousands shows only with thousands of samples.

Stops happen only at a look or a power of two (16, 32, 64, ...), so the count is one of a few
values whatever the machine's speed. The time cap (`max_seconds`) is checked before each step:
a step predicted (from this model's measured time per sample) not to fit is not started, and the
row says `time cap`. A step that overruns twice the cap anyway (the machine slowed down) is
abandoned and the figures of the last boundary stand. A pinned count (`--samples`,
`quant_gate_samples`) is never time-capped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from ..results import OutputFigures
from ..rowblocks import Bootstrap, Interval, SamplingRecord
from . import estimate
from .figures import CONSTANT_EXACT, output_figures, settle
from .judge import Budget
from .settings import MIN_SAMPLES, GateSettings
from .steps import Clock, RunPair, Stepper
from .sums import OutputSums

# A pass is precise enough when the drop's 95 % half-width is at most this share of the budget
# (the reported drop then moves with the seed by about half that, one standard deviation).
PRECISION = 0.1
# A pass is decided only from as many samples as put this many input and output elements through
# the model (a power of two from min_samples to PASS_FLOOR_MAX): a cheap scalar model is checked
# against failures on 1 input in a few hundred, a 224x224 image model after tens of samples.
PASS_FLOOR_ELEMENTS = 1 << 22
PASS_FLOOR_MAX = 2048
# The pilot's guess of the first look assumes about this many looks' worth of confidence.
_PLAN_Z = 2.5

_NORMAL = NormalDist()
_Z95 = _NORMAL.inv_cdf(0.975)


@dataclass
class Sampling:
    """How many samples were measured, how the looks were planned, and why the measurement stopped."""

    mode: str  # "adaptive", "fixed", "eval set"
    samples: int = 0
    stopped: str = ""  # "decided", "sample cap", "time cap", "fixed", "eval set", "verdict"
    steps: list[int] = field(default_factory=list)  # the looks evaluated
    planned: list[int] = field(default_factory=list)  # the looks planned after the pilot
    level: float = estimate.CONFIDENCE  # each look's confidence (over all planned looks: 95 %)
    seconds: float = 0.0
    bootstrap_seed: list[int] = field(default_factory=list)
    available: int | None = None  # rows of the eval set

    @property
    def time_capped(self) -> bool:
        return self.stopped == "time cap"

    def record(self, note: str | None = None) -> SamplingRecord:
        """What the row's `sampling` block says of it (`note`: said under -v)."""
        return SamplingRecord(
            mode=self.mode,
            samples=self.samples,
            stopped=self.stopped,
            steps=tuple(self.steps),
            planned=tuple(self.planned),
            look_confidence=round(self.level, 6),
            bootstrap=Bootstrap(
                method="studentised cluster bootstrap with a tail allowance",
                replicates=estimate.BOOTSTRAP_REPLICATES,
                confidence=estimate.CONFIDENCE,
                tail_allowance=estimate.TAIL_ALLOWANCE,
                seed=tuple(self.bootstrap_seed),
            ),
            available=self.available,
            note=note,
        )


@dataclass
class Measured:
    outputs: list[OutputFigures]
    sampling: Sampling
    decided: bool  # every judged budget's interval on one side of its threshold
    undecided: str | None = None  # why not, in words (None when decided)
    note: str | None = None  # what else the row should say (a pinned count below the pass floor)


def _doubling(first: int, cap: int) -> list[int]:
    steps, n = [], first
    while n < cap:
        steps.append(n)
        n *= 2
    return [*steps, cap]


def measure(
    run_pair: RunPair,
    names: list[str],
    judged: set[str],
    feeds: Iterator[dict],
    budgets: tuple[Budget, ...],
    settings: GateSettings,
    *,
    fixed: int | None,
    mode: str,
    keep_values: bool = False,
    batch: int | Callable[[dict], int] = 1,
    available: int | None = None,
    level: float | None = None,
) -> Measured:
    """Feed samples from `feeds` to both sides (`run_pair(feeds, first_index)` -> per output, the
    per-sample fp32 and int8 values), `batch` at a time (or as many as `batch(next_feed)` says),
    and evaluate at each look. `available`:
    how many feeds there are (an eval set: judged once, on all of them or the first
    `max_samples`), None for an endless stream (adaptive) or a pinned count (`fixed`). `level`
    overrides the looks' confidence (a second measurement of the same samples uses the first's)."""
    run = Stepper(run_pair, names, feeds, Clock(settings, capped=fixed is None), batch, keep_values)
    boot_seed = settings.bootstrap_seed
    sampling = Sampling(mode=mode, bootstrap_seed=boot_seed, available=available)
    adaptive = fixed is None and available is None
    cap = fixed if fixed is not None else settings.max_samples
    if available is not None:
        cap = min(cap, available)
    # the pilot (adaptive sampling only) plans the looks
    short = ""
    least = max(settings.min_samples, MIN_SAMPLES)  # whatever the pilot, no verdict from fewer than 32
    floors = (least, least)
    if adaptive:
        short = run.walk(min(settings.min_samples, cap))
        floors = (least, pass_floor(run.elements[0] if run.elements else 1, least))
        planned = _plan(run.sums, names, judged, budgets, run.done, cap, floors[1]) if not short else [run.done]
    else:
        planned = [cap]
    level = level or estimate.look_level(tuple(planned))
    sampling.planned, sampling.level = planned, level

    last = None
    for target in planned:
        short = short or run.walk(target)
        if run.done == 0:
            break
        if available is not None and run.elements:  # an eval set cut short: held to the same floor
            floors = (least, pass_floor(run.elements[0], least))
        if last is None or last[0] != run.done:
            last = (run.done, *_evaluate(run.sums, run.kept, names, judged, budgets, boot_seed, level, floors))
            sampling.steps.append(run.done)
        sampling.stopped = _stop_at_look(last[4], short, available, adaptive and stops(last[2], last[3]))
        if sampling.stopped:
            break
    if not sampling.stopped:
        sampling.stopped = _stop_at_end(fixed, available, run.done)
    sampling.seconds = run.clock.elapsed()
    if last is None:
        return Measured([], sampling, False, "no sample was measured")
    return _conclude(last, sampling, judged, budgets, floors, available, fixed, run.elements)


def _stop_at_look(final: bool, short: str, available: int | None, decided: bool) -> str:
    """Why the sampling stops at this look ("" to go on)."""
    if final:
        return "verdict"
    if short == "time cap":
        return "time cap"
    if short == "exhausted":
        return "eval set" if available is not None else "feeds ran out"
    return "decided" if decided else ""


def _stop_at_end(fixed: int | None, available: int | None, done: int) -> str:
    """Why the sampling stopped after its last planned look."""
    if fixed is not None:
        return "fixed"
    if available is not None:
        return "eval set" if done >= available else "sample cap"
    return "sample cap"


def _conclude(last, sampling: Sampling, judged, budgets, floors, available, fixed, elements) -> Measured:
    """The verdict of the last look, settled when no more samples were to come."""
    at, outputs, decision, _precise, _final, why = last
    sampling.samples = at
    outputs = [settle(o, at) for o in outputs]
    if sampling.stopped in ("sample cap", "fixed", "eval set"):  # no more samples were to come
        if available is not None and at >= available:  # the whole eval set: nothing rarer left to see
            floors = (floors[0], min(floors[1], at))
        decision, _, _, why = decide(outputs, judged, budgets, sampling.level, at, floors, settled=True)
    decided = decision in ("over", "within")
    note = None
    if fixed is not None and elements and decision == "within":
        floor = pass_floor(elements[0], floors[0])
        if at < floor:  # the user's choice, said: what those samples cannot see
            note = (
                f"pinned at {at} samples, a pass can miss a failure on fewer than 1 input in "
                f"{math.ceil(at / 3):,} (adaptive sampling decides a pass of this model from {floor:,})"
            )
    return Measured(outputs, sampling, decided, None if decided else why, note)


def _plan(sums, names, judged, budgets, pilot: int, cap: int, floor: int) -> list[int]:
    """The looks after the pilot (`plan_looks` on the pilot's judged outputs)."""
    lins: list[estimate.Linear | None] = []
    for n in names:
        s = sums[n]
        if n not in judged or not _has_figures(s):
            continue  # not judged, or a verdict already: the first look says it
        constant = s.fp32_max == s.fp32_min or s.int8_max == s.int8_min
        lins.append(None if constant else estimate.linear(s))
    return plan_looks(lins, budgets, pilot, cap, floor)


def plan_looks(
    lins: list[estimate.Linear | None], budgets, pilot: int, cap: int, floor: int | None = None
) -> list[int]:
    """The looks after a pilot of `pilot` samples whose judged outputs gave `lins` (None: constant
    so far, which samples to the cap): the first at the count the figures say a verdict needs
    (for a pass, at least `floor`), rounded up to a power of two times the pilot, then doubling to
    the cap."""
    within_need, over_need = float(pilot), math.inf
    for lin in lins:
        if lin is None:
            return [cap]  # a difference on one input in thousands shows only late
        for b in budgets:
            value = lin.point[b.figure]
            need = _needed(b, value, lin.se[b.figure], lin.allowance[b.figure], pilot)
            if np.isfinite(value) and not b.within(value):
                over_need = min(over_need, need)  # one budget shown over is a verdict
            else:
                within_need = max(within_need, need, floor or pilot)  # a pass needs every one
    need = over_need if math.isfinite(over_need) else within_need
    first = pilot
    while first < need and first < cap:
        first *= 2
    return _doubling(min(first, cap), cap)


def _needed(b: Budget, value: float, se: float, allowance: tuple[float, float], n: int) -> float:
    """Samples the pilot's figure needs for its interval to clear the threshold (and, for a pass
    of the drop, to be precise): half-width z se sqrt(n/m) + k a n/m at m samples."""
    if not (np.isfinite(value) and np.isfinite(se)) or not all(np.isfinite(allowance)):
        return math.inf
    margin = abs(b.threshold - value)
    within = b.within(value)
    if b.figure == "drop" and within:
        margin = min(margin, PRECISION * b.threshold)
    if margin <= 0:
        return math.inf
    # the side of the interval that must clear the threshold: toward it
    down, up = allowance
    toward_up = within == b.higher_is_worse
    k_a = estimate.TAIL_ALLOWANCE * (up if toward_up else down)
    # solve z se u + k_a u^2 <= margin for u = sqrt(n/m)
    zse = _PLAN_Z * se
    if k_a > 0:
        u = (-zse + math.sqrt(zse * zse + 4 * k_a * margin)) / (2 * k_a)
    else:
        u = margin / zse if zse > 0 else math.inf
    return n / (u * u) if u > 0 else math.inf


def _evaluate(sums, kept, names, judged, budgets, boot_seed, level, floors):
    """(figures of every output, decision, precise, final, why undecided): decision is "over",
    "within" or ""; `final` when a verdict needs no more samples (NaN/inf, sizes that differ)."""
    outputs = []
    for n in names:
        s = sums[n]
        est = estimate.estimate(s, boot_seed, level) if _has_figures(s) else None
        outputs.append(output_figures(n, n in judged, s, est, kept.get(n)))
    n_samples = max((s.samples for s in sums.values()), default=0)
    return (outputs, *decide(outputs, judged, budgets, level, n_samples, floors))


def decide(outputs, judged, budgets, level, n_samples, floors: tuple[int, int], *, settled=False):
    """(decision, precise, final, why undecided) for the judged outputs' figures at `level`.
    `floors`: the fewest samples any verdict, and a pass, is decided on. Until the outputs are
    `settled` (the last look), a constant-looking output decides nothing."""
    min_decided, min_pass = floors
    widen95 = _Z95 / _z(level)
    sides, precise, final, why = [], True, False, ""
    drop_budget = next(b.threshold for b in budgets if b.figure == "drop")
    for fig in outputs:
        if fig.name not in judged:
            continue
        if fig.verdict != "ok":
            final = True
            continue
        if fig.note and fig.note.startswith("constant"):
            if settled and fig.note.startswith(CONSTANT_EXACT):
                sides.append("within")
                continue
            why = why or f"output '{fig.name}' is constant so far"
            sides.append("straddles")
            continue
        for b in budgets:
            if getattr(fig, b.figure) is None:
                continue  # undefined because int8 equals fp32 there (infinite SQNR)
            ci = _ci(fig, b.figure)
            side = b.side(ci)
            sides.append(side)
            if side == "straddles" and not why:
                shown = f"[{ci.low:.6g}, {ci.high:.6g}]" if ci else "undefined"
                why = f"the {level:.1%} interval of the {b.figure} {shown} straddles {b.threshold:g}"
                if len(judged) > 1:
                    why += f" on output '{fig.name}'"
        ci = fig.drop_ci
        if ci is None or ci.half_width * widen95 > PRECISION * drop_budget:
            precise = False
    if n_samples < min_decided:
        return "", precise, final, f"fewer than the {min_decided} samples a verdict needs"
    # One budget firmly over decides a fail; a pass needs every budget firmly within.
    if "over" in sides:
        return "over", precise, final, ""
    if sides and all(side == "within" for side in sides):
        if n_samples < min_pass:
            horizon = f"1 input in {math.ceil(n_samples / 3):,}"
            return (
                "",
                precise,
                final,
                (
                    f"a pass of a model this size needs {min_pass:,} samples ({n_samples:,} see failures on "
                    f"{horizon} or more)"
                ),
            )
        return "within", precise, final, ""
    return "", precise, final, why or "no judged figure"


def pass_floor(elements: int, least: int) -> int:
    """The fewest samples a pass is decided on for a model whose sample has `elements` input and
    output elements: a power of two from `least` to `PASS_FLOOR_MAX`."""
    n = least
    while n < PASS_FLOOR_MAX and (2 * n) * max(elements, 1) <= PASS_FLOOR_ELEMENTS:
        n *= 2
    return n


def _z(level: float) -> float:
    return _NORMAL.inv_cdf(0.5 + level / 2.0)


def stops(decision: str, precise: bool) -> bool:
    """Whether adaptive sampling stops at a look: a fail as soon as one budget is firmly over, a
    pass once every budget is firmly within and the drop is precise."""
    return decision == "over" or (decision == "within" and precise)


def _has_figures(s: OutputSums) -> bool:
    return not (s.size_mismatch or s.fp32_nonfinite is not None or s.int8_nonfinite is not None) and s.samples > 0


def _ci(fig: OutputFigures, figure: str) -> Interval | None:
    return getattr(fig, f"{figure}_ci")
