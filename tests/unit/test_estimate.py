"""The estimator and the sampling loop: figures that match numpy, intervals that are what they
say (BCa to a textbook's arithmetic, the tail allowance on the right side), sums that stay small
and exact, and sampling that stops where and how it should. Synthetic outputs (the arithmetic is
numpy's, not ONNX Runtime's); coverage in simulation is test_coverage.py, real models
test_gate_truth.py."""

from __future__ import annotations

import math
import time
from statistics import NormalDist

import numpy as np
import pytest

from quantgate.gate import estimate, sums
from quantgate.gate.estimate import interval, linear, replicate_rows
from quantgate.gate.judge import budgets_of
from quantgate.gate.measure import PASS_FLOOR_MAX, decide, measure, pass_floor
from quantgate.gate.settings import GateSettings
from quantgate.gate.sums import OutputSums
from quantgate.results import Interval, OutputFigures

SEED = [0, 0xB007]


def clustered(rng, n_samples, elems=32, noise=0.1, shared=0.8):
    """fp32/int8 pairs whose elements within one sample share most of their error (a filtered
    image, not 32 independent draws)."""
    for _ in range(n_samples):
        x = rng.standard_normal(elems)
        err = shared * rng.standard_normal() + (1 - shared) * rng.standard_normal(elems)
        yield x, x + noise * err


def sums_of(pairs) -> OutputSums:
    s = OutputSums()
    for x, y in pairs:
        s.add(x, y)
    return s


def test_point_figures_match_numpy():
    rng = np.random.default_rng(0)
    pairs = list(clustered(rng, 300))
    s = sums_of(pairs)
    x = np.concatenate([p[0] for p in pairs])
    y = np.concatenate([p[1] for p in pairs])
    p = linear(s).point
    assert p["drop"] == pytest.approx(1 - np.corrcoef(x, y)[0, 1], rel=1e-9)
    assert p["sqnr_db"] == pytest.approx(10 * np.log10((x * x).sum() / ((y - x) ** 2).sum()), rel=1e-9)
    assert p["rmse"] == pytest.approx(np.sqrt(((y - x) ** 2).mean()), rel=1e-9)
    worst = int(np.argmax([np.abs(b - a).max() for a, b in pairs]))
    assert s.samples == 300 and s.max_abs_error == pytest.approx(np.abs(y - x).max())
    assert s.worst_sample == worst


def test_standard_errors_are_the_linear_influence_of_each_sample():
    """se from the analytic gradients equals the delta method done by finite differences."""
    s = sums_of(clustered(np.random.default_rng(3), 200))
    m = s.matrix()
    total = m.sum(axis=0)
    lin = linear(s)
    for key in estimate.FIGURES:
        f0 = estimate.figures(total, s.scale)[key]
        infl = []
        for row in m:  # d figure when this sample's weight grows by h
            h = 1e-6
            infl.append((estimate.figures(total + h * row, s.scale)[key] - f0) / h)
        assert lin.se[key] == pytest.approx(float(np.sqrt(np.sum(np.square(infl)))), rel=1e-4), key


def _textbook_bca(values, theta, jack, level):
    """Efron & Tibshirani (1993) §14.3, written out with loops."""
    b = len(values)
    z0 = NormalDist().inv_cdf(sum(1 for v in values if v < theta) / b)
    mean = sum(jack) / len(jack)
    num = sum((mean - j) ** 3 for j in jack)
    den = 6 * sum((mean - j) ** 2 for j in jack) ** 1.5
    acc = num / den
    out = []
    for alpha in ((1 - level) / 2, 1 - (1 - level) / 2):
        z = NormalDist().inv_cdf(alpha)
        out.append(NormalDist().cdf(z0 + (z0 + z) / (1 - acc * (z0 + z))))
    return tuple(float(np.quantile(values, q)) for q in out)


def test_the_interval_is_bca_plus_the_tail_allowance():
    s = sums_of(clustered(np.random.default_rng(1), 150, noise=0.3))
    lin = linear(s)
    reps = replicate_rows(s.matrix(), SEED)
    lo, hi = _textbook_bca(list(reps["drop"]), lin.point["drop"], list(lin.jack["drop"]), 0.95)
    plain = interval(reps["drop"], lin.point["drop"], lin.jack["drop"], 0.95)
    assert (plain.low, plain.high) == pytest.approx((lo, hi), rel=1e-12)
    pct = interval(reps["drop"])  # plain percentiles differ: BCa moves the quantiles
    assert abs(pct.low - lo) > 1e-9
    down, up = lin.allowance["drop"]
    assert down > 0 and up > 0 and down != pytest.approx(up)
    est = estimate.estimate(s, SEED)
    k = estimate.TAIL_ALLOWANCE
    assert est.intervals["drop"].low == pytest.approx(max(lo - k * down, 0.0), rel=1e-12)
    assert est.intervals["drop"].high == pytest.approx(hi + k * up, rel=1e-12)


def test_the_allowance_widens_the_side_a_lone_sample_pushes():
    """One sample with a large error pushes the drop up: the upper side widens by five times its
    share, the lower side barely."""
    rng = np.random.default_rng(2)
    pairs = [(x, x + 0.01 * rng.standard_normal(8)) for x in rng.standard_normal((200, 8))]
    x = rng.standard_normal(8)
    pairs.append((x, x + 1.0))
    lin = linear(sums_of(pairs))
    down, up = lin.allowance["drop"]
    without = linear(sums_of(pairs[:-1])).point["drop"]
    assert up == pytest.approx(lin.point["drop"] - without, rel=1e-9)
    assert up > 50 * down
    sq_down, sq_up = lin.allowance["sqnr_db"]  # the same sample pulls SQNR down
    assert sq_down > 50 * sq_up


def test_cluster_bootstrap_covers_where_element_counting_would_not():
    truth = linear(sums_of(clustered(np.random.default_rng(123), 20_000, elems=32))).point["drop"]
    covered = naive = 0
    trials = 60
    for t in range(trials):
        s = sums_of(clustered(np.random.default_rng(t), 256))
        ci = estimate.estimate(s, [t, 1]).intervals["drop"]
        covered += ci.low <= truth <= ci.high
        r = 1 - linear(s).point["drop"]  # elements as independent draws (Fisher z)
        z, se = np.arctanh(r), 1 / np.sqrt(256 * 32 - 3)
        naive += 1 - np.tanh(z + 1.96 * se) <= truth <= 1 - np.tanh(z - 1.96 * se)
    assert covered / trials >= 0.93, covered
    assert naive / trials < 0.6, naive  # far too narrow: why samples are resampled whole


def test_same_rows_same_interval_and_seeded():
    s = sums_of(clustered(np.random.default_rng(5), 100))
    a = estimate.estimate(s, [0, 1]).intervals["drop"]
    assert a == estimate.estimate(s, [0, 1]).intervals["drop"]
    assert a != estimate.estimate(s, [1, 1]).intervals["drop"]


def test_rows_stay_bounded_and_depend_only_on_the_count():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20_000, 3))
    y = x + 0.1 * rng.standard_normal((20_000, 3))
    bulk, one = OutputSums(), OutputSums()
    bulk.add_many(x, y)
    for i in range(20_000):
        one.add(x[i], y[i])
    assert np.array_equal(bulk.matrix(), one.matrix()) and bulk.samples == 20_000
    assert len(bulk.matrix()) <= 2 * sums.ROW_CAP
    for n in (4096, 8192, 16384):  # a power of two is min(n, 4096) rows of n/4096 samples
        s = OutputSums()
        s.add_many(x[:n], y[:n])
        assert s.matrix().shape == (4096, sums.COLUMNS) and s.block == max(1, n // 4096)
    # the totals, and so the point figures, are those of every sample
    assert linear(bulk).point["drop"] == pytest.approx(1 - np.corrcoef(x.ravel(), y.ravel())[0, 1], rel=1e-9)


def test_huge_and_tiny_values_do_not_overflow():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((50, 4))
    y = x + 0.05 * rng.standard_normal((50, 4))
    base = linear(sums_of(zip(x, y, strict=True))).point
    for scale in (1e200, 1e-200):
        got = linear(sums_of(zip(x * scale, y * scale, strict=True))).point
        assert got["drop"] == pytest.approx(base["drop"], rel=1e-9)
        assert got["rmse"] == pytest.approx(base["rmse"] * scale, rel=1e-9)
    s = OutputSums()  # later samples far larger than the first: the sums are rescaled
    s.add(x[0], y[0])
    for a, b in zip(x[1:] * 1e250, y[1:] * 1e250, strict=True):
        s.add(a, b)
    assert np.isfinite(s.matrix()).all() and np.isfinite(linear(s).point["drop"])


def test_a_resample_without_spread_is_undefined_not_two():
    t = np.zeros(sums.COLUMNS)
    t[sums.N], t[sums.SX], t[sums.SXX] = 4, 2.0, 1.0  # four equal fp32 values
    t[sums.SY], t[sums.SYY], t[sums.SXY] = 2.0, 1.0 + 1e-17, 1.0 - 1e-17
    assert math.isnan(estimate.figures(t)["drop"])


def test_outputs_of_varying_length_are_judged_on_every_value():
    rng = np.random.default_rng(7)
    pairs = [(x, x + 0.02 * rng.standard_normal(len(x))) for x in (rng.standard_normal(k) for k in (3, 9, 1, 5) * 30)]
    s = sums_of(pairs)
    x = np.concatenate([p[0] for p in pairs])
    y = np.concatenate([p[1] for p in pairs])
    assert s.samples == 120 and s.sizes == {1, 3, 5, 9}
    assert linear(s).point["drop"] == pytest.approx(1 - np.corrcoef(x, y)[0, 1], rel=1e-9)


def _fig(drop, lo, hi):
    return OutputFigures(name="y", judged=True, verdict="ok", drop=drop, drop_ci=Interval(lo, hi))


def test_a_pass_needs_the_floor_a_fail_does_not():
    budgets = budgets_of(0.01)[:1]
    inside, over = [_fig(0.002, 0.0019, 0.0021)], [_fig(0.05, 0.04, 0.06)]
    assert decide(inside, {"y"}, budgets, 0.95, 2048, (32, 2048))[0] == "within"
    d, _p, _f, why = decide(inside, {"y"}, budgets, 0.95, 1024, (32, 2048))
    assert d == "" and "needs 2,048 samples" in why
    assert decide(over, {"y"}, budgets, 0.95, 32, (32, 2048))[0] == "over"
    assert decide(over, {"y"}, budgets, 0.95, 16, (32, 2048))[0] == ""  # below the fewest for any verdict
    # precise: the 95 % half-width within 10 % of the budget, measured at 95 % whatever the look's level
    z = NormalDist().inv_cdf(0.995) / NormalDist().inv_cdf(0.975)
    assert decide([_fig(0.005, 0.0041, 0.0059)], {"y"}, budgets, 0.95, 4096, (32, 32))[1]
    assert not decide([_fig(0.005, 0.0039, 0.0061)], {"y"}, budgets, 0.95, 4096, (32, 32))[1]
    assert decide([_fig(0.005, 0.005 - 0.0009 * z, 0.005 + 0.0009 * z)], {"y"}, budgets, 0.99, 4096, (32, 32))[1]


def test_the_pass_floor_follows_the_elements_of_a_sample():
    assert pass_floor(2, 32) == PASS_FLOOR_MAX == 2048  # a scalar model
    assert pass_floor(2 * 224 * 224, 32) == 32  # a 224x224 filter: tens of samples
    assert pass_floor(2 * 32 * 32, 32) == 2048 and pass_floor(4 * 32 * 32, 32) == 1024


def test_looks_share_5_percent_between_them():
    """The looks' confidence against an independent check: partial means of Gaussian data at the
    looks, the chance that any look's interval misses the mean."""
    steps = (64, 128, 256, 512, 1024)
    level = estimate.look_level(steps)
    assert 0.95 < level < 0.995
    z = NormalDist().inv_cdf(0.5 + level / 2)
    rng = np.random.default_rng(99)
    x = rng.standard_normal((20_000, steps[-1]))
    c = np.cumsum(x, axis=1)
    miss = np.zeros(len(x), bool)
    for n in steps:
        miss |= np.abs(c[:, n - 1] / n) > z / np.sqrt(n)
    assert miss.mean() == pytest.approx(0.05, abs=0.006)
    assert estimate.look_level((500,)) == 0.95


def synthetic(noise, elems=16, seed=0):
    """A stand-in model pair for `measure`: fp32 = the feed, int8 = feed + noise * its own error."""

    def feeds():
        rng = np.random.default_rng(seed)
        while True:
            yield {"x": rng.standard_normal(elems)}

    def run_pair(chunk, first):
        fp, q = [], []
        for j, feed in enumerate(chunk):
            x = feed["x"]
            err = np.random.default_rng(10_000 + first + j).standard_normal(elems)
            fp.append(x)
            q.append(x + noise * err)
        return [fp], [q]

    return feeds, run_pair


def _measure(run_pair, feeds, budget, settings=None, fixed=None, **kw):
    return measure(
        run_pair,
        ["y"],
        {"y"},
        feeds,
        budgets_of(budget),
        settings or GateSettings(),
        fixed=fixed,
        mode="adaptive" if fixed is None else "fixed",
        **kw,
    )


def test_far_inside_its_budget_a_big_output_stops_at_the_pilot():
    feeds, run_pair = synthetic(0.001, elems=50_000)  # 100k elements a sample: the floor is the pilot
    m = _measure(run_pair, feeds(), 0.01, batch=8)
    assert m.decided and m.sampling.stopped == "decided"
    assert m.sampling.samples == 32 and m.sampling.steps == [32]


def test_a_scalar_output_far_inside_stops_at_its_floor_and_one_over_at_once():
    feeds, run_pair = synthetic(0.001, elems=1)
    m = _measure(run_pair, feeds(), 0.01, batch=256)
    assert m.decided and m.sampling.samples == 2048 and m.sampling.steps == [2048]
    feeds, run_pair = synthetic(1.0, elems=1)  # drop ~0.3 against 0.01: over at the first look
    m = _measure(run_pair, feeds(), 0.01, batch=256)
    assert m.decided and m.sampling.stopped == "decided" and m.sampling.samples <= 64
    assert len(m.sampling.steps) == 1 and m.outputs[0].drop > 0.2


def test_the_budget_inside_the_interval_samples_to_the_cap_and_is_undecided():
    feeds, run_pair = synthetic(0.1)
    probe = _measure(run_pair, feeds(), 1.0, fixed=4096)
    budget = probe.outputs[0].drop  # the budget exactly at the drop: no sample count can decide it
    m = _measure(run_pair, feeds(), budget, GateSettings(max_samples=1024))
    assert m.sampling.stopped == "sample cap" and m.sampling.samples == 1024 and not m.decided
    assert m.sampling.steps[-1] == 1024 and "straddles" in m.undecided


def test_the_time_cap_stops_at_a_boundary_and_says_so():
    feeds, run_pair = synthetic(0.1, elems=1)

    calls = []

    def slow(chunk, first):
        calls.append(first + len(chunk))
        time.sleep(0.002 * len(chunk))
        return run_pair(chunk, first)

    m = _measure(slow, feeds(), 0.0199, GateSettings(max_seconds=0.15))
    assert m.sampling.stopped == "time cap" and m.sampling.time_capped
    assert m.sampling.samples in (16, 32, 64) and not m.decided  # a power of two, never "79"
    assert max(calls) == m.sampling.samples  # the step that would not fit was never started


def test_a_step_that_overruns_goes_back_to_the_last_boundary():
    feeds, run_pair = synthetic(0.1, elems=1)
    calls = []

    def slower(chunk, first):
        calls.append(first)
        time.sleep(0.0005 if first < 64 else 0.05)  # the machine slows down after 64 samples
        return run_pair(chunk, first)

    m = _measure(slower, feeds(), 0.0199, GateSettings(max_seconds=0.5))
    assert m.sampling.stopped == "time cap" and m.sampling.samples in (32, 64)
    assert max(calls) + 1 > m.sampling.samples  # it did run past the boundary, and went back


def test_a_pinned_count_is_never_time_capped_and_a_small_one_is_undecided():
    feeds, run_pair = synthetic(0.001, elems=1)
    m = _measure(run_pair, feeds(), 0.01, GateSettings(max_seconds=1e-9), fixed=40)
    assert (m.sampling.samples, m.sampling.stopped) == (40, "fixed")
    # the user's count decides, and the row says what 40 samples cannot see
    assert m.decided and "fewer than 1 input in 14" in m.note and "from 2,048" in m.note
    m = _measure(run_pair, feeds(), 0.01, fixed=2)
    assert not m.decided and "fewer than the 32" in m.undecided


def _constant_with_a_collapse(every):
    """fp32 is 1.0 on every input; int8 too, except 0.0 on one input in `every` (a collapse)."""

    def feeds():
        rng = np.random.default_rng(0)
        while True:
            yield {"u": rng.random(1)}

    def run_pair(chunk, first):
        q = [np.array([0.0 if f["u"][0] < 1 / every else 1.0]) for f in chunk]
        return [[np.ones(1) for _ in chunk]], [q]

    return feeds, run_pair


def test_a_constant_output_samples_on_and_a_rare_collapse_fails():
    feeds, run_pair = _constant_with_a_collapse(4096)
    m = _measure(run_pair, feeds(), 0.01, batch=256)
    assert m.sampling.samples > 4096, m.sampling  # 256 identical samples decide nothing
    fig = m.outputs[0]
    assert fig.verdict == "fail" and "int8 varies" in fig.note
    assert fig.worst_sample is not None and fig.max_abs_error == 1.0
    feeds, run_pair = _constant_with_a_collapse(10**12)  # never: identical on every sample to the cap
    m = _measure(run_pair, feeds(), 0.01, GateSettings(max_samples=8192), batch=256)
    assert m.decided and m.sampling.samples == 8192 and m.outputs[0].drop_ci == Interval(0.0, 0.0)
    assert "fewer than 1 input in 2,731" in m.outputs[0].note


def test_memory_stays_flat_however_many_samples():
    """quant_gate_samples at its maximum must not take the runner's memory: the rows stop growing
    at 4,096 and the bootstrap streams its replicates."""
    import tracemalloc

    from quantgate.gate.settings import SAMPLES_LIMIT

    rng = np.random.default_rng(8)
    s = OutputSums()
    tracemalloc.start()
    for _ in range(SAMPLES_LIMIT // 8192):
        x = rng.standard_normal((8192, 1))
        s.add_many(x, x + 0.01 * rng.standard_normal((8192, 1)))
        del x
    tracemalloc.reset_peak()
    est = estimate.estimate(s, SEED)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert s.samples == SAMPLES_LIMIT and est.intervals["drop"] is not None
    assert len(s.matrix()) <= 2 * sums.ROW_CAP
    assert peak < 16 * 2**20, peak  # MB, not the GiBs a (replicates x samples) weight matrix took


def test_the_registry_caps_a_pinned_count_where_the_gate_does():
    from quantgate.gate.settings import SAMPLES_LIMIT
    from quantgate.schema import load_schema

    entry = load_schema("registry.schema.json")["$defs"]["entry"]["properties"]["quant_gate_samples"]
    assert entry["maximum"] == SAMPLES_LIMIT
    with pytest.raises(Exception, match="not a sample count from 1 to 262,144"):
        GateSettings(samples=SAMPLES_LIMIT + 1)


def test_no_verdict_from_fewer_than_32_whatever_the_cap():
    feeds, run_pair = synthetic(0.001, elems=50_000)
    m = _measure(run_pair, feeds(), 0.01, GateSettings(max_samples=16, min_samples=16), batch=8)
    assert m.sampling.samples == 16 and not m.decided and "fewer than the 32" in m.undecided


# -- edges the mutation run found unguarded (issue 19) ----------------------------------------------
def _totals(**cols) -> np.ndarray:
    t = np.zeros(sums.COLUMNS)
    for name, v in cols.items():
        t[getattr(sums, name)] = v
    return t


@pytest.mark.parametrize("side", ["fp32", "int8"])
def test_a_variance_below_a_1e12_share_of_the_second_moment_is_rounding(side):
    """Four values of about 1,000 whose variance is 2e-13 of their second moment (B = n SXX - SX^2
    = 8e-7 against n SXX = 4e6): no spread, no PLCC, whatever the units or the number of rows
    summed; 1e-9 of it is spread. The other output varies (C = 16)."""
    x, y = ("SX", "SXX"), ("SY", "SYY")
    near, spread = (x, y) if side == "fp32" else (y, x)
    for share, defined in ((2e-13, False), (1e-9, True)):
        t = _totals(N=4, **{near[0]: 2e3, near[1]: 1e6 * (1 + share), spread[0]: 0.0, spread[1]: 4.0})
        for k, units in ((1.0, 1.0), (1e3, 1.0), (1.0, 1e3), (1e-3, 1e-3)):
            scaled = t * k  # k: rows of k times as many samples alike; units: values times `units`
            scaled[[sums.SX, sums.SY]] *= units
            scaled[[sums.SXX, sums.SYY]] *= units * units
            assert math.isnan(estimate.figures(scaled)["drop"]) != defined, (share, k, units)


def test_a_perfect_linear_relation_has_a_drop_in_zero_to_two_not_past_it():
    """int8 = c fp32 exactly: PLCC is +-1, but A / sqrt(B C) rounds past it in about a quarter of
    such outputs; the drop stays in [0, 2] (the point figure is what the JSON shows)."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        x, c = rng.standard_normal(16), rng.uniform(0.1, 10)
        up = linear(sums_of([(x, c * x)])).point
        down = linear(sums_of([(x, -c * x)])).point
        assert 0.0 <= up["drop"] < 1e-12 and 2.0 - 1e-12 < down["drop"] <= 2.0
        assert down["plcc"] >= -1.0 and up["plcc"] <= 1.0


def test_gain_offset_is_a_tenth_for_a_gain_of_1_1_or_a_tenth_rms_offset_on_any_output():
    """The docstring's promise, worked by hand: int8 = 1.1 fp32 puts 0.1 fp32 in the error's affine
    part (RMS 0.1 of fp32's); int8 = fp32 + 0.1 RMS is an offset of 0.1. Also on outputs whose
    variance is zero (a constant) or far below one in the scaled sums (two values, near-constant)."""
    constant = np.full((10, 4), 2.0)
    s = OutputSums()
    s.add_many(constant, constant + 0.2)  # offset 0.2 against RMS 2
    assert linear(s).point["gain_offset"] == pytest.approx(0.1, rel=1e-9)
    two = np.array([1.0, -1.0])
    near = 1.0 + 0.1 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    rng = np.random.default_rng(11)
    for fp32 in (two[None, :], near, rng.standard_normal((20, 3))):
        s = OutputSums()
        s.add_many(fp32, 1.1 * fp32)
        assert linear(s).point["gain_offset"] == pytest.approx(0.1, rel=1e-9)
        rms = float(np.sqrt(np.mean(fp32 * fp32)))
        s = OutputSums()
        s.add_many(fp32, fp32 + 0.1 * rms)
        assert linear(s).point["gain_offset"] == pytest.approx(0.1, rel=1e-9)


def test_an_exact_output_has_no_gain_offset_and_no_standard_error_on_it():
    """int8 = fp32: no error, so no affine part, and no sample can move it: its standard error is
    0, not NaN (the pilot plans samples from it)."""
    x = np.random.default_rng(12).standard_normal((10, 4))
    s = OutputSums()
    s.add_many(x, x.copy())
    lin = linear(s)
    assert lin.point["gain_offset"] == 0.0 and lin.se["gain_offset"] == 0.0
    assert lin.point["drop"] == 0.0 and lin.se["drop"] == 0.0


def test_the_drops_gradient_where_the_correlation_is_exactly_zero():
    """A = n SXY - SX SY = 4*2 - 2*4 = 0, B = 4*3 - 4 = 8, C = 4*12 - 16 = 32: drop = 1 - A / 16,
    so d drop / d T = -dA / 16 = -(SXY, -SY, -SX, 0, 0, n) / 16, worked by hand; and the same by
    finite differences of the figure."""
    t = _totals(N=4, SX=2.0, SY=4.0, SXX=3.0, SYY=12.0, SXY=2.0, SX2=3.0, SEE=1.0, SE=1.0)
    g = estimate.gradients(t)["drop"]
    assert list(g) == [-0.125, 0.25, 0.125, 0.0, 0.0, -0.25, 0.0, 0.0, 0.0]
    h = 1e-7
    for j in range(sums.COLUMNS):
        e = np.zeros(sums.COLUMNS)
        e[j] = h
        fd = (estimate.figures(t + e)["drop"] - estimate.figures(t - e)["drop"]) / (2 * h)
        assert g[j] == pytest.approx(fd, abs=1e-7), j


def test_standard_errors_of_a_small_near_constant_output():
    """As test_standard_errors_are_the_linear_influence_of_each_sample, on six values near 1 (the
    scaled sums' B is far below one, and std > 5 % of RMS: rel_rmse's scale is the std)."""
    fp32 = np.array([[1.0, 0.8], [0.9, 0.95], [0.85, 1.0]])
    int8 = fp32 + np.array([[0.01, -0.02], [0.03, 0.0], [-0.01, 0.02]])
    s = sums_of(zip(fp32, int8, strict=True))
    m = s.matrix()
    total = m.sum(axis=0)
    lin = linear(s)
    for key in estimate.FIGURES:
        f0 = estimate.figures(total, s.scale)[key]
        h = 1e-7
        infl = [(estimate.figures(total + h * row, s.scale)[key] - f0) / h for row in m]
        assert lin.se[key] == pytest.approx(float(np.sqrt(np.sum(np.square(infl)))), rel=1e-4), key


def test_two_samples_have_allowances_and_intervals():
    """Two samples: leaving one out leaves the other, whose drop numpy gives; the allowances are
    the largest such change each way, and every figure has an interval around its point."""
    rng = np.random.default_rng(13)
    pairs = [(x, x + 0.1 * rng.standard_normal(8)) for x in rng.standard_normal((2, 8))]
    s = sums_of(pairs)
    lin = linear(s)
    alone = [1 - np.corrcoef(x, y)[0, 1] for x, y in pairs]
    point = lin.point["drop"]
    assert lin.allowance["drop"] == pytest.approx((max(max(alone) - point, 0.0), max(point - min(alone), 0.0)))
    assert sum(lin.allowance["drop"]) > 0
    est = estimate.estimate(s, SEED)
    for key in estimate.FIGURES:
        ci = est.intervals[key]
        assert ci is not None and ci.low <= est.point[key] <= ci.high, key


def test_the_chunk_size_is_memory_only(monkeypatch):
    """Replicates streamed 7 at a time (1,000 is no multiple of 7) draw the same weights as 25 at a
    time, and give the same figures (to the rounding of a matrix product of another shape)."""
    m = sums_of(clustered(np.random.default_rng(14), 30)).matrix()
    base = replicate_rows(m, SEED)
    weights = np.vstack([w for _, w in estimate.replicate_weights(len(m), SEED)])
    monkeypatch.setattr(estimate, "REPLICATE_CHUNK", 7)
    odd = replicate_rows(m, SEED)
    chunks = list(estimate.replicate_weights(len(m), SEED))
    assert [d for d, _ in chunks] == list(range(0, 1000, 7)) and len(chunks[-1][1]) == 1000 % 7
    assert np.array_equal(np.vstack([w for _, w in chunks]), weights)
    for k in estimate.FIGURES:
        assert odd[k] == pytest.approx(base[k], rel=1e-9), k


def test_an_interval_needs_nine_in_ten_finite_replicates():
    """Plain percentiles of 1..9 at 2.5 % and 97.5 %: positions 0.2 and 7.8, so 1.2 and 8.8."""
    nine = np.append(np.arange(1.0, 10.0), np.nan)
    assert interval(nine) == Interval(pytest.approx(1.2), pytest.approx(8.8))
    assert interval(np.append(np.arange(1.0, 9.0), [np.nan, np.nan])) is None
    assert interval(np.array([3.0])) == Interval(3.0, 3.0)
    assert interval(np.array([])) is None
    assert interval(np.array([np.nan])) is None


def test_bca_of_replicates_symmetric_about_the_point_is_plain_percentiles():
    """Replicates -10..10 around a point of 0 (one replicate equal to it: half of it counts below)
    have no bias to correct; without skew in the jackknife (none, constant, or symmetric) there is
    no acceleration either: BCa is the plain percentile interval."""
    v = np.arange(-10.0, 11.0)
    plain = interval(v)
    for jack in (None, np.full(5, 0.3), np.array([-1.0, 0.0, 1.0])):
        got = interval(v, 0.0, jack)
        assert (got.low, got.high) == pytest.approx((plain.low, plain.high), rel=1e-9), jack


def test_bca_where_every_replicate_lies_on_one_side_is_mirror_symmetric():
    """Every replicate above the point (or every one below) would put the bias correction at
    -inf (+inf); it is held at 1/n from either end, the same on both sides: the replicates and
    the point mirrored give the interval mirrored."""
    v = 1.0 + np.arange(20.0) ** 1.5
    above = interval(v, 0.0)
    below = interval(-v, 0.0)
    assert np.isfinite([above.low, above.high]).all() and v.min() <= above.low < above.high < v.max()
    assert (below.low, below.high) == pytest.approx((-above.high, -above.low), rel=1e-12)


def test_a_three_sample_jackknife_accelerates():
    """Three jackknife values are enough for a skew: the interval is the textbook BCa's."""
    rng = np.random.default_rng(15)
    v = rng.gamma(2.0, size=400)
    jack = np.array([0.0, 0.0, 1.0])
    lo, hi = _textbook_bca(list(v), 1.7, list(jack), 0.95)
    got = interval(v, 1.7, jack)
    assert (got.low, got.high) == pytest.approx((lo, hi), rel=1e-12)
    assert got != interval(v, 1.7)


def test_a_look_schedules_level_depends_on_the_steps_ratios_only():
    """Z_k = S_k / sqrt(n_k) for a sum of n_k unit variances: doubling every n_k changes nothing
    (the simulation draws the same normals), so the level is the same to rounding."""
    a = estimate.look_level((32, 64, 128))
    b = estimate.look_level((64, 128, 256))
    c = estimate.look_level((1, 2, 4))
    assert a == pytest.approx(b, rel=1e-12) and a == pytest.approx(c, rel=1e-12)
