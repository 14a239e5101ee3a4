"""The timing arithmetic of `gate --bench`, on a virtual clock: two callables of known cost, so the
ratio, its interval, the stopping rule and the verdict can be checked exactly."""

import numpy as np
import pytest

from quantgate.gate import latency


class Clock:
    """A nanosecond clock that only moves when a timed callable runs."""

    def __init__(self):
        self.t = 0

    def __call__(self) -> int:
        return self.t

    def work(self, rng, mean_ns: float, noise: float):
        def run():
            self.t += max(1, int(mean_ns * (1 + noise * rng.standard_normal())))

        return run


@pytest.mark.parametrize("true_ratio, verdict", [(1.6, "slower"), (0.5, "faster"), (1.02, "same")])
def test_time_pair_finds_a_known_ratio_and_calls_it_by_its_interval(true_ratio, verdict):
    clock, rng = Clock(), np.random.default_rng(0)
    t = latency.time_pair(
        clock.work(rng, 100_000, 0.05),
        clock.work(rng, 100_000 * true_ratio, 0.05),
        threads="1",
        batch=1,
        clock=clock,
    )
    assert t.ratio_ci.low <= true_ratio <= t.ratio_ci.high
    assert t.verdict == verdict
    assert t.pairs >= latency.MIN_PAIRS and t.pairs % 8 == 0  # stopped by the precision rule
    assert t.ratio_ci.high - t.ratio_ci.low <= 2 * latency.PRECISION * t.ratio
    assert t.fp32_ms == pytest.approx(0.1, rel=0.05)


def test_a_noisy_pair_stops_at_the_time_limit_not_before_it_is_precise():
    clock, rng = Clock(), np.random.default_rng(1)
    t = latency.time_pair(
        clock.work(rng, 1_000_000, 2.0), clock.work(rng, 1_000_000, 2.0), threads="1", batch=1, seconds=0.5, clock=clock
    )
    assert t.seconds >= 0.5 and t.pairs < latency.MAX_PAIRS
    assert t.ratio_ci.high - t.ratio_ci.low > 2 * latency.PRECISION * t.ratio


def test_the_median_interval_covers_the_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    true_median = 1.0  # lognormal(0, s) has median exp(0) = 1
    hits = 0
    trials = 2000
    for _ in range(trials):
        _, ci = latency.median_interval(rng.lognormal(0.0, 0.3, size=48))
        hits += ci.low <= true_median <= ci.high
    assert 0.93 <= hits / trials <= 0.98


def test_speed_warnings_say_slower_or_no_faster_and_nothing_when_faster():
    def timing(ratio, lo, hi, threads="1", batch=1):
        return latency.Timing(threads, batch, 48, 1.0, ratio, ratio, latency.Interval(lo, hi), 0.1)

    (slow,) = latency.speed_warnings("static", [timing(1.4, 1.3, 1.5), timing(0.9, 0.85, 0.95, batch=16)])
    assert slow.startswith("int8 is 1.40x slower than fp32") and "1 of 2 configurations" in slow
    assert "keep fp32" in slow and "static PTQ" not in slow
    (same,) = latency.speed_warnings("dynamic", [timing(1.01, 0.98, 1.04)])
    assert same.startswith("int8 runs no faster than fp32") and "file size only" in same
    assert latency.speed_warnings("dynamic", [timing(0.5, 0.45, 0.55), timing(1.01, 0.98, 1.04)]) == ()
    assert latency.speed_warnings("dynamic", []) == ()


def test_batched_stacks_feeds_along_the_first_axis_cycling_when_there_are_fewer():
    feeds = [{"x": np.full((1, 3), i, np.float32)} for i in range(3)]
    b = latency.batched(feeds, 5)
    assert b["x"].shape == (5, 3) and b["x"][:, 0].tolist() == [0, 1, 2, 0, 1]
