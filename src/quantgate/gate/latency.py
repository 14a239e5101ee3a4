"""How fast int8 runs against fp32 on this machine (`quantgate gate --bench`).

Timings are the one figure the gate reports that depends on the machine; they never change a
verdict. Per thread count (1, and ONNX Runtime's default pool) both models get fresh CPU sessions;
per configuration (thread count x batch) a warm-up, then back-to-back pairs of runs, the order
alternating pair by pair (fp32 first, then int8 first) so that a drift of the machine's speed
falls on both alike.

The figure is the median int8/fp32 time ratio. Consecutive pairs are not independent (the
machine's state drifts), so the ratios are taken in blocks of `BLOCK` consecutive pairs and the
95 % interval is the distribution-free one of the median of the block medians (order statistics).
A configuration runs at least `MIN_SECONDS` and `MIN_PAIRS` pairs, then until that interval is
within `PRECISION` of the ratio or `SECONDS` have passed; a model so slow that few pairs fit gets
the wide interval its few pairs give (at least `FEWEST_PAIRS`).

A model is called slower (or faster) only when the whole interval says so by more than
`MARGIN`: a 2 % difference on a shared machine decides nothing. The interval covers the noise of
this run; another run on a shared machine can land further away (docs/cli.md says how far).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..errors import one_line
from ..rowblocks import Interval, Latency

WARMUP_RUNS = 3
BLOCK = 8  # pairs per block
MIN_PAIRS = 48
FEWEST_PAIRS = 5  # a model slower than SECONDS per run still gets this many
MAX_PAIRS = 20_000
MIN_SECONDS = 0.5  # per configuration: a few ms of pairs is one moment of the machine, not its speed
SECONDS = 2.0  # per configuration, once MIN_PAIRS (or FEWEST_PAIRS) are in
PRECISION = 0.03  # stop once the ratio's interval is within 3 % of it
MARGIN = 0.05  # int8 is "slower" only when the interval's low end is above 1.05
LARGE_BATCH = 16
METHOD = (
    "fresh ONNX Runtime CPU sessions per thread count, warm-up, fp32 and int8 in back-to-back "
    "pairs (order alternating; the default pool's idle threads not spinning), median int8/fp32 "
    f"ratio with a 95 % order-statistic interval over blocks of {BLOCK} pairs; at least "
    f"{MIN_SECONDS:g} s and {MIN_PAIRS} pairs, then until the interval is within {PRECISION:.0%} of "
    f"the ratio or {SECONDS:g} s"
)


@dataclass(frozen=True)
class Timing:
    """One configuration's figures."""

    threads: str  # "1" or "default"
    batch: int  # rows along the first axis of the inputs fed
    pairs: int
    fp32_ms: float  # medians
    int8_ms: float
    ratio: float  # int8 / fp32: below 1 is faster
    ratio_ci: Interval
    seconds: float

    @property
    def verdict(self) -> str:
        """slower, faster, or same (the interval does not clear the margin either way)."""
        if self.ratio_ci.low > 1 + MARGIN:
            return "slower"
        if self.ratio_ci.high < 1 - MARGIN:
            return "faster"
        return "same"

    @property
    def label(self) -> str:
        th = "1 thread" if self.threads == "1" else "default threads"
        return f"{th}, batch {self.batch}"

    def to_json(self) -> dict:
        return {
            "threads": self.threads,
            "batch": self.batch,
            "pairs": self.pairs,
            "fp32_ms": round(self.fp32_ms, 6),
            "int8_ms": round(self.int8_ms, 6),
            "ratio": round(self.ratio, 4),
            "ratio_ci": [round(self.ratio_ci.low, 4), round(self.ratio_ci.high, 4)],
            "verdict": self.verdict,
            "seconds": round(self.seconds, 3),
        }


def median_interval(values: np.ndarray) -> tuple[float, Interval]:
    """The median and its distribution-free 95 % interval: the order statistics of ranks
    floor(n/2 - 0.98·√n) and ceil(1 + n/2 + 0.98·√n) (1-based; the normal approximation of the
    binomial count of values below the median), clamped to the sample."""
    v = np.sort(np.asarray(values, np.float64))
    n = len(v)
    half = 0.98 * math.sqrt(n)
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return float(np.median(v)), Interval(float(v[lo]), float(v[hi]))


def ratio_interval(fp: list[int], q: list[int]) -> tuple[float, Interval]:
    """The int8/fp32 ratio and its interval, from block medians of the pairs' ratios (plain pairs
    while there are fewer than three blocks)."""
    r = np.asarray(q, np.float64) / np.asarray(fp, np.float64)
    n_blocks = len(r) // BLOCK
    if n_blocks < 3:
        return median_interval(r)
    return median_interval(np.median(r[: n_blocks * BLOCK].reshape(n_blocks, BLOCK), axis=1))


def time_pair(
    run_fp32: Callable[[], object],
    run_int8: Callable[[], object],
    *,
    threads: str,
    batch: int,
    seconds: float = SECONDS,
    min_seconds: float = MIN_SECONDS,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Timing:
    """Time two callables as described in the module's docstring."""
    warm_until = clock() + int(seconds / 2 * 1e9)
    for _ in range(WARMUP_RUNS):
        run_fp32()
        run_int8()
        if clock() >= warm_until:  # a slow model: one warm-up run each is enough
            break
    fp: list[int] = []
    q: list[int] = []
    start = clock()
    soonest, deadline = start + int(min_seconds * 1e9), start + int(seconds * 1e9)
    while len(fp) < MAX_PAIRS:
        first_fp = len(fp) % 2 == 0
        for which in ("fp", "q") if first_fp else ("q", "fp"):
            t0 = clock()
            (run_fp32 if which == "fp" else run_int8)()
            dt = clock() - t0
            (fp if which == "fp" else q).append(max(dt, 1))
        n, now = len(fp), clock()
        if now >= deadline and n >= FEWEST_PAIRS:
            break
        if n >= MIN_PAIRS and now >= soonest and n % BLOCK == 0:
            ratio, ci = ratio_interval(fp, q)
            if ci.high - ci.low <= 2 * PRECISION * ratio:
                break
    ratio, ci = ratio_interval(fp, q)
    return Timing(
        threads=threads,
        batch=batch,
        pairs=len(fp),
        fp32_ms=float(np.median(fp)) / 1e6,
        int8_ms=float(np.median(q)) / 1e6,
        ratio=ratio,
        ratio_ci=ci,
        seconds=(clock() - start) / 1e9,
    )


def rows(feeds: list[dict], count: int) -> dict:
    """`count` single rows (first-axis slices) taken in turn from the feeds, stacked: a batch of
    exactly `count`, whatever the first axis of each feed."""
    names = list(feeds[0])
    picked: dict[str, list] = {k: [] for k in names}
    have = 0
    while have < count:
        for f in feeds:
            for j in range(f[names[0]].shape[0]):
                for k in names:
                    picked[k].append(f[k][j : j + 1])
                have += 1
                if have == count:
                    break
            if have == count:
                break
    return {k: np.concatenate(v, axis=0) for k, v in picked.items()}


def _rows_of(feed: dict) -> int:
    shapes = [np.shape(v) for v in feed.values()]
    return int(shapes[0][0]) if shapes and shapes[0] else 1


def measure(
    fp32_path, int8_path, names: list[str], feeds: list[dict], batchable: bool, max_elements: int
) -> tuple[list[Timing], list[str]]:
    """Every configuration's timing, and notes on configurations that could not run. A batchable
    model (every input has a free first axis) is timed at batch 1 and `LARGE_BATCH`, built from
    single rows; any other model on one sample as it is gated (its batch: the first axis fed).
    `max_elements` bounds the elements of one batched input, like a drawn sample's."""
    from ..onnxio import session

    plans: list[tuple[int, Callable[[], dict]]]
    if batchable:
        plans = [(1, lambda: rows(feeds, 1)), (LARGE_BATCH, lambda: rows(feeds, LARGE_BATCH))]
    else:
        plans = [(_rows_of(feeds[0]), lambda: feeds[0])]
    out: list[Timing] = []
    notes: list[str] = []
    for threads in ("1", "default"):
        n = 1 if threads == "1" else 0  # 0: ONNX Runtime's default pool
        s_fp, s_q = session(fp32_path, threads=n), session(int8_path, threads=n)
        for batch, make in plans:
            try:
                feed = make()
                big = max(int(np.size(v)) for v in feed.values())
                if big > max_elements:
                    raise ValueError(f"an input of {big:,} elements is over the limit of {max_elements:,}")
                run_fp, run_q = partial(s_fp.run, names, feed), partial(s_q.run, names, feed)
                run_fp()
                run_q()
            except Exception as e:  # e.g. a first axis that is not really a free batch axis
                note = f"batch {batch} not timed: {one_line(e, 160)}"
                notes += [note] if note not in notes else []
                continue
            out.append(time_pair(run_fp, run_q, threads=threads, batch=batch))
    return out, notes


def cpu_label() -> str:
    """The CPU and the integer kernel family ONNX Runtime uses on it, for a warning line."""
    from ..cpu import cpu_info, int8_kernels

    return f"{cpu_info()['model']}, int8 kernels {int8_kernels()['family']}"


def block(timings: list[Timing], notes: list[str]) -> Latency:
    """The row's `latency` block (results JSON): every configuration, how they were timed, where."""
    from ..cpu import cpu_info, int8_kernels

    return Latency(
        method=METHOD,
        cpu=cpu_info()["model"],
        int8_kernels=int8_kernels()["family"],
        logical_cores=cpu_info()["logical_cores"],
        timings=tuple(t.to_json() for t in timings),
        notes=tuple(notes),
    )


def _advice(mode: str) -> str:
    if mode == "dynamic":
        return "keep fp32 (quant_mode fp32) or try static PTQ, whose graph does not compute activation ranges per run"
    return "keep fp32 (quant_mode fp32) for CPUs like this one"


def headline(timings: list[dict]) -> dict | None:
    """The configuration a one-figure summary shows (the comment's column): 1 thread at the
    smallest batch timed, how a small model is usually run."""
    one = [t for t in timings if t.get("threads") == "1"]
    return min(one, key=lambda t: t.get("batch", 1)) if one else None


def speed_warnings(mode: str, timings: list[Timing], fp32_bytes: int | None, int8_bytes: int | None) -> tuple[str, ...]:
    """One plain line when int8 is measurably slower than fp32 here in some configuration, or
    when it is faster in none, with the figures."""
    if not timings:
        return ()
    slower = [t for t in timings if t.verdict == "slower"]
    if slower:
        worst = max(slower, key=lambda t: t.ratio)
        where = (
            "every configuration" if len(slower) == len(timings) else f"{len(slower)} of {len(timings)} configurations"
        )
        return (
            f"int8 is {worst.ratio:.2f}x slower than fp32 on this CPU ({worst.label}: {worst.int8_ms:.3g} ms "
            f"against {worst.fp32_ms:.3g} ms, 95% {worst.ratio_ci.low:.2f}-{worst.ratio_ci.high:.2f}x; slower in "
            f"{where} timed; {cpu_label()}); {_advice(mode)}",
        )
    if not any(t.verdict == "faster" for t in timings):
        h = timings[0]
        # "no faster" only when every interval rules out a gain beyond the margin
        claim = "runs no faster" if all(t.ratio_ci.low >= 1 - MARGIN for t in timings) else "is not measurably faster"
        smaller = fp32_bytes and int8_bytes is not None and int8_bytes < fp32_bytes
        return (
            f"int8 {claim} than fp32 on this CPU in any configuration timed ({h.label}: "
            f"{h.ratio:.2f}x, 95% {h.ratio_ci.low:.2f}-{h.ratio_ci.high:.2f}x; {cpu_label()})"
            + ("; its gain here is the smaller file" if smaller else ""),
        )
    return ()


def size_warnings(fp32_bytes: int, int8_bytes: int) -> tuple[str, ...]:
    """One plain line when the int8 file is larger than the fp32 one (usual below a few KB of
    weights: scales, zero points and the extra nodes outweigh the bytes saved)."""
    if not fp32_bytes or int8_bytes <= fp32_bytes:
        return ()
    return (
        f"the int8 file is {int8_bytes / fp32_bytes:.2f}x larger than fp32 ({int8_bytes:,} against "
        f"{fp32_bytes:,} bytes: scales, zero points and the added nodes outweigh the weight bytes saved); "
        "keep fp32 (quant_mode fp32) unless int8 is faster where it runs (quantgate gate --bench)",
    )
