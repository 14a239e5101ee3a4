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
    assert t.pairs >= latency.MIN_PAIRS and t.pairs % latency.BLOCK == 0  # stopped by the precision rule
    assert latency.MIN_SECONDS <= t.seconds < latency.SECONDS  # ran its minimum time, not more
    assert t.ratio_ci.high - t.ratio_ci.low <= 2 * latency.PRECISION * t.ratio
    assert t.fp32_ms == pytest.approx(0.1, rel=0.05)


def test_a_noisy_pair_stops_at_the_time_limit_not_before_it_is_precise():
    clock, rng = Clock(), np.random.default_rng(1)
    t = latency.time_pair(
        clock.work(rng, 1_000_000, 2.0), clock.work(rng, 1_000_000, 2.0), threads="1", batch=1, seconds=0.5, clock=clock
    )
    assert t.seconds >= 0.5 and t.pairs < latency.MAX_PAIRS
    assert t.ratio_ci.high - t.ratio_ci.low > 2 * latency.PRECISION * t.ratio


def test_a_model_slower_than_the_time_limit_per_run_stops_after_the_fewest_pairs():
    """At 1 s a run, the 2 s limit cannot hold MIN_PAIRS pairs: the warm-up shrinks to one run
    each, FEWEST_PAIRS pairs are timed, and the interval is as wide as so few pairs make it."""
    clock, rng = Clock(), np.random.default_rng(3)
    calls = []
    fp = clock.work(rng, 1e9, 0.05)
    q = clock.work(rng, 1.5e9, 0.05)
    t = latency.time_pair(lambda: calls.append(1) or fp(), q, threads="1", batch=1, clock=clock)
    assert t.pairs == latency.FEWEST_PAIRS and len(calls) == 1 + latency.FEWEST_PAIRS
    assert t.ratio_ci.low <= 1.5 <= t.ratio_ci.high


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

    (slow,) = latency.speed_warnings("static", [timing(1.4, 1.3, 1.5), timing(0.9, 0.85, 0.95, batch=16)], 100, 50)
    assert slow.startswith("int8 is 1.40x slower than fp32") and "1 of 2 configurations" in slow
    assert "keep fp32" in slow and "static PTQ" not in slow
    (same,) = latency.speed_warnings("dynamic", [timing(1.01, 0.98, 1.04)], 100, 50)
    assert same.startswith("int8 runs no faster than fp32") and "its gain here is the smaller file" in same
    (unsure,) = latency.speed_warnings("dynamic", [timing(0.89, 0.80, 0.97)], 100, 150)
    assert unsure.startswith("int8 is not measurably faster than fp32") and "gain" not in unsure
    assert latency.speed_warnings("dynamic", [timing(0.5, 0.45, 0.55), timing(1.01, 0.98, 1.04)], 100, 50) == ()
    assert latency.speed_warnings("dynamic", [], 100, 50) == ()


def test_rows_builds_a_batch_of_exactly_n_rows_whatever_the_feeds_first_axis():
    """Feeds of 3 rows each (an eval set or a quant_inputs shape with a first axis of 3): batch 1
    is one row and batch 5 five, taken in turn, every input alike."""
    feeds = [
        {"x": np.full((3, 2), i, np.float32), "y": np.arange(3, dtype=np.int64)[:, None] + 10 * i} for i in range(2)
    ]
    one = latency.rows(feeds, 1)
    assert one["x"].shape == (1, 2) and one["y"].tolist() == [[0]]
    five = latency.rows(feeds, 5)
    assert five["x"][:, 0].tolist() == [0, 0, 0, 1, 1] and five["y"][:, 0].tolist() == [0, 1, 2, 10, 11]
    cycled = latency.rows(feeds[:1], 4)  # fewer rows than asked: taken again from the start
    assert cycled["y"][:, 0].tolist() == [0, 1, 2, 0]
