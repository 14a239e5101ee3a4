"""The estimator: intervals that cover, sampling that stops where it should, the same figures
every run. Synthetic outputs here (the arithmetic is numpy's, not ONNX Runtime's); the gate on
real models is in test_gate_truth.py."""

from __future__ import annotations

import numpy as np
import pytest

from quantgate.gate.estimate import OutputSums, interval, jackknife, point, replicates, resample_weights
from quantgate.gate.judge import budgets_of
from quantgate.gate.measure import measure
from quantgate.gate.settings import GateSettings


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
    p = point(s)
    assert p["drop"] == pytest.approx(1 - np.corrcoef(x, y)[0, 1], rel=1e-9)
    assert p["sqnr_db"] == pytest.approx(10 * np.log10((x * x).sum() / ((y - x) ** 2).sum()), rel=1e-9)
    assert p["rmse"] == pytest.approx(np.sqrt(((y - x) ** 2).mean()), rel=1e-9)
    assert s.samples == 300 and s.max_abs_error == pytest.approx(np.abs(y - x).max())


def test_cluster_bootstrap_covers_the_truth_where_element_counting_would_not():
    truth_rng = np.random.default_rng(123)
    truth = point(sums_of(clustered(truth_rng, 200_000, elems=32)))["drop"]
    covered = naive_covered = 0
    trials = 200
    for t in range(trials):
        s = sums_of(clustered(np.random.default_rng(t), 256))
        reps = replicates(s, resample_weights(s.samples, [t, 1]))["drop"]
        ci = interval(reps, point(s)["drop"], jackknife(s)["drop"])
        covered += ci.low <= truth <= ci.high
        # the interval one would get by treating all 64 x 32 elements as independent (Fisher z)
        r = 1 - point(s)["drop"]
        z, se = np.arctanh(r), 1 / np.sqrt(256 * 32 - 3)
        lo, hi = 1 - np.tanh(z + 1.96 * se), 1 - np.tanh(z - 1.96 * se)
        naive_covered += lo <= truth <= hi
    assert 0.91 <= covered / trials <= 0.99, covered
    assert naive_covered / trials < 0.6, naive_covered  # far too narrow: why samples are resampled whole


def test_same_rows_same_interval_and_seeded():
    s = sums_of(clustered(np.random.default_rng(5), 100))
    a = interval(replicates(s, resample_weights(100, [0, 1]))["drop"])
    b = interval(replicates(s, resample_weights(100, [0, 1]))["drop"])
    c = interval(replicates(s, resample_weights(100, [1, 1]))["drop"])
    assert a == b and a != c


def synthetic(noise):
    """A stand-in model pair for `measure`: fp32 = the feed, int8 = feed + noise * its own error."""

    def feeds(seed=0):
        rng = np.random.default_rng(seed)
        while True:
            yield {"x": rng.standard_normal(16)}

    def run_pair(feed, i):
        x = feed["x"]
        err = np.random.default_rng(10_000 + i).standard_normal(16)
        return [x], [x + noise * err]

    return feeds, run_pair


@pytest.mark.parametrize(
    "noise,expect_samples,expect_stop",
    [
        (0.001, 256, "decided"),  # drop ~1e-6 against 0.01: decided and precise at the first step
        (0.03, None, "decided"),  # drop ~1e-3: decided at once, grows until known to 5 %
    ],
)
def test_adaptive_sampling_stops_when_decided_and_precise(noise, expect_samples, expect_stop):
    feeds, run_pair = synthetic(noise)
    m = measure(run_pair, ["y"], {"y"}, feeds(), budgets_of(0.01), GateSettings(), fixed=None, mode="adaptive")
    assert m.sampling.stopped == expect_stop and m.decided
    if expect_samples:
        assert m.sampling.samples == expect_samples and m.sampling.steps == [256]
    else:
        assert 256 < m.sampling.samples <= 4096
    ci = m.outputs[0].drop_ci
    assert ci.half_width <= max(0.05 * m.outputs[0].drop, 1e-6)


def test_adaptive_sampling_grows_to_the_cap_when_the_budget_sits_inside_the_interval():
    feeds, run_pair = synthetic(0.1)
    probe = measure(run_pair, ["y"], {"y"}, feeds(), budgets_of(1.0), GateSettings(), fixed=4096, mode="fixed")
    budget = probe.outputs[0].drop  # the budget exactly at the drop: no sample count can decide it
    m = measure(
        run_pair, ["y"], {"y"}, feeds(), budgets_of(budget), GateSettings(max_samples=1024), fixed=None, mode="adaptive"
    )
    assert m.sampling.stopped == "sample cap" and m.sampling.samples == 1024 and not m.decided
    assert m.sampling.steps == [256, 512, 1024]


def test_time_cap_stops_a_slow_model_and_says_so():
    feeds, run_pair = synthetic(0.1)
    m = measure(
        run_pair, ["y"], {"y"}, feeds(), budgets_of(0.0199), GateSettings(max_seconds=1e-9), fixed=None, mode="adaptive"
    )
    assert m.sampling.stopped == "time cap" and m.sampling.samples == 16


def test_fixed_count_and_constant_output_stop_at_once():
    feeds, run_pair = synthetic(0.1)
    m = measure(run_pair, ["y"], {"y"}, feeds(), budgets_of(0.01), GateSettings(), fixed=200, mode="fixed")
    assert (m.sampling.samples, m.sampling.stopped) == (200, "fixed")

    def constant(feed, i):
        return [np.ones(4)], [np.ones(4) * (1 + 0.01 * (i % 2))]

    m = measure(constant, ["y"], {"y"}, feeds(), budgets_of(0.01), GateSettings(), fixed=None, mode="adaptive")
    assert m.sampling.stopped == "verdict" and m.outputs[0].verdict == "fail"
