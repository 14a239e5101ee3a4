"""How often the gate's intervals cover the true drop, and how often its verdicts are wrong, on
seeded synthetic errors from Gaussian to rare outliers (`quantgate.gate.simulate`; the true drop
is known in closed form). bench/coverage.py runs the same with more trials and the default cap
for the table in docs/measurement.md.

What must hold:
- at every sample count where the gate can decide a pass (from the pass floor of a scalar model,
  2,048 samples), the 95 % interval covers the truth in at least 93 % of runs, for every family;
  from 32 samples for the families without a rare component (Gaussian, t(3)), and from where
  the rare component is in the sample often enough (kurtosis 45: 1 % of samples, from 1,024);
- below the floor the gate decides only fails, so there its interval may miss only below the
  truth: it lies wholly above the truth (which would fail a good model) in at most 2.5 %;
- at all the looks of a run at once, the interval misses in at most 7 % of runs;
- over all looks, a model exactly at its budget is "decided" either way in at most 5 % of runs;
  one 10 % over is decided within, or 10 % under decided over, in at most 5 %;
- the test has teeth: the previous release's plain BCa interval misses 93 % where the gate's
  holds, and BCa and plain percentiles are told apart where the replicates are skewed.
"""

from __future__ import annotations

import numpy as np
import pytest

from quantgate.gate import estimate, simulate
from quantgate.gate.measure import PASS_FLOOR_MAX, pass_floor

TRIALS = 240
CAP = 4096
NS = [32 * 2**k for k in range(8)]  # 32 ... 4096
SEED = 20261130
HOLDS_FROM = {"gaussian": 32, "t3": 32, "kurtosis45": 1024, "outliers": 2048}
FLOOR = pass_floor(2, NS[0])  # a scalar output: one value on each side
# Binomial slack: with 240 trials a rate of 5 % is measured within about +-2.8 % (95 %)
SLACK = 0.028


@pytest.fixture(scope="module")
def runs():
    return {name: simulate.looked(simulate.matrices(f, TRIALS, NS, SEED)) for name, f in simulate.FAMILIES.items()}


@pytest.fixture(scope="module")
def covered(runs):
    return {name: simulate.coverage(at) for name, at in runs.items()}


def test_the_pass_floor_of_a_scalar_model_is_where_rare_outliers_are_covered():
    assert FLOOR == PASS_FLOOR_MAX == 2048 == HOLDS_FROM["outliers"]


def test_the_batched_replicates_are_the_gates_own():
    """The simulation computes the bootstrap for many trials at once; it must be the gate's."""
    m = simulate.matrices(simulate.FAMILIES["t3"], 3, [300], 1)[300]
    batched = simulate.drop_replicates(m)
    for t in range(3):
        own = estimate.replicate_rows(m[t], simulate.BOOT_SEED)["drop"]
        # the same weights; one matrix product over trials rounds differently from the gate's own
        np.testing.assert_allclose(batched[t], own, rtol=1e-10)


@pytest.mark.parametrize("family", list(simulate.FAMILIES))
def test_the_interval_covers_the_true_drop_wherever_a_pass_can_be_decided(covered, family):
    table = covered[family]
    shown = {n: round(table[(n, "gate")][1] / TRIALS, 3) for n in NS}
    for n in NS:
        _below, cover, above = table[(n, "gate")]
        if n >= HOLDS_FROM[family]:
            assert cover / TRIALS >= 0.93, (family, n, shown)
        # where only a fail can be decided, a miss must lie below the truth (the safe side)
        assert above / TRIALS <= 0.025, (family, n, above)


def test_without_the_tail_allowance_the_interval_would_not_hold(covered):
    """The previous release's interval (BCa, no allowance) fails the same criterion: this test
    would catch a return to it."""
    misses = [
        (f, n, table[(n, "bca")][1] / TRIALS)
        for f, table in covered.items()
        for n in NS
        if n >= HOLDS_FROM[f] and table[(n, "bca")][1] / TRIALS < 0.93
    ]
    assert len(misses) >= 8, misses
    # t(3) errors: the old interval covers about 80 %, at every n
    assert all(covered["t3"][(n, "bca")][1] / TRIALS < 0.9 for n in NS)


def test_bca_is_told_apart_from_plain_percentiles(runs):
    """Where the bootstrap replicates are skewed (t(3) errors; rare outliers once a few are in
    the sample), BCa covers more often than plain percentiles on the same replicates. Paired
    trials: the runs only one of them covers decide it (McNemar), far beyond chance."""
    only_bca = only_pct = 0
    cells = [("t3", n) for n in NS] + [("outliers", n) for n in NS if n >= 2048]
    for f, n in cells:
        for lk in runs[f][n]:
            a = lk.interval(estimate.CONFIDENCE, allowance=0.0, bca=True)
            b = lk.interval(estimate.CONFIDENCE, allowance=0.0, bca=False)
            in_a = a is not None and a.low <= simulate.TRUE_DROP <= a.high
            in_b = b is not None and b.low <= simulate.TRUE_DROP <= b.high
            only_bca += in_a and not in_b
            only_pct += in_b and not in_a
    z = (only_bca - only_pct) / np.sqrt(only_bca + only_pct)
    assert z >= 3.0, (only_bca, only_pct)


@pytest.mark.parametrize("family", list(simulate.FAMILIES))
def test_verdicts_are_wrong_at_most_5_percent_at_0_9_1_0_and_1_1_times_the_budget(runs, family):
    at = runs[family]
    rates = {}
    for ratio in (0.9, 1.0, 1.1):
        v = simulate.verdicts(at, simulate.TRUE_DROP / ratio, NS[0], CAP)
        rates[ratio] = {d: sum(x.decision == d for x in v) / TRIALS for d in ("within", "over", "")}
        # every pass was decided at or past the floor; fails may come earlier
        assert all(x.samples >= FLOOR for x in v if x.decision == "within")
    assert rates[1.0]["within"] + rates[1.0]["over"] <= 0.05 + SLACK, rates
    assert rates[1.1]["within"] <= 0.05 + SLACK, rates
    assert rates[0.9]["over"] <= 0.05 + SLACK, rates
    # and it is not right by never deciding: Gaussian errors 10 % off the budget are mostly decided
    if family == "gaussian":
        assert rates[0.9]["within"] >= 0.5 and rates[1.1]["over"] >= 0.5, rates


@pytest.mark.parametrize("family", list(simulate.FAMILIES))
def test_the_interval_holds_at_every_look_at_once(runs, family):
    """The looks' confidence is set so that the interval holds at all planned looks at once (95 %):
    then it holds wherever sampling stops, whatever the stop depended on. Counted per run of
    the gate's schedule, for models 0.3, 0.9, 1.0 and 1.1 times their budget: a miss is an
    interval wholly above the truth at any look (a good model failed), or wholly below it at
    any look from the pass floor on (a bad one passed)."""
    at = runs[family]
    for ratio in (0.3, 0.9, 1.0, 1.1):
        budget = simulate.TRUE_DROP / ratio
        missed = 0
        for t in range(TRIALS):
            looks = simulate.plan(at, t, budget, NS[0], CAP)
            level = estimate.look_level(tuple(looks))
            for n in looks:
                ci = at[n][t].interval(level)
                if ci.low > simulate.TRUE_DROP or (n >= FLOOR and ci.high < simulate.TRUE_DROP):
                    missed += 1
                    break
        assert missed / TRIALS <= 0.07, (family, ratio, missed)
