"""How fast int8 runs against fp32 on this machine (`quantgate gate --bench`).

Timings are the one figure the gate reports that depends on the machine; they never change a
verdict. Per configuration (threads x batch) both models get fresh ONNX Runtime CPU sessions and
a warm-up, then run in back-to-back pairs, the order alternating pair by pair (fp32 first, then
int8 first) so that a drift of the machine's speed falls on both alike. The figure is the median
of the pairs' int8/fp32 time ratios, with a distribution-free 95 % interval from the order
statistics of the ratios; runs continue until that interval is within `PRECISION` of the median
or the configuration has run `SECONDS`.

A model is called slower (or faster) only when the whole interval says so by more than
`MARGIN`: a 2 % difference on a shared machine decides nothing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..results import Interval

WARMUP_RUNS = 3
MIN_PAIRS = 48
MAX_PAIRS = 5000
SECONDS = 2.0  # per configuration
PRECISION = 0.03  # stop once the ratio's interval is within 3 % of it
MARGIN = 0.05  # int8 is "slower" only when the interval's low end is above 1.05
LARGE_BATCH = 16
METHOD = (
    "fresh ONNX Runtime CPU sessions per configuration, warm-up, fp32 and int8 in back-to-back "
    "pairs (order alternating; the default pool's idle threads not spinning), median of the "
    "pairs' int8/fp32 ratios with a 95 % order-statistic interval; runs until the interval is "
    f"within {PRECISION:.0%} of the ratio or {SECONDS:g} s"
)


def default_threads() -> int:
    """The cores this process may run on: what ONNX Runtime's default thread pool sizes itself to
    (at most; it counts physical cores)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Timing:
    """One configuration's figures."""

    threads: str  # "1" or "default"
    batch: int
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
        th = "1 thread" if self.threads == "1" else f"default threads ({default_threads()} cores)"
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
    """The median and its distribution-free 95 % interval: the order statistics n/2 -/+ 0.98·√n
    (the normal approximation of the binomial count of values below the median)."""
    v = np.sort(values)
    n = len(v)
    half = 0.98 * math.sqrt(n)
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return float(np.median(v)), Interval(float(v[lo]), float(v[hi]))


def time_pair(
    run_fp32: Callable[[], object],
    run_int8: Callable[[], object],
    *,
    threads: str,
    batch: int,
    seconds: float = SECONDS,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Timing:
    """Time two callables as described in the module's docstring."""
    for _ in range(WARMUP_RUNS):
        run_fp32()
        run_int8()
    fp: list[int] = []
    q: list[int] = []
    start = clock()
    deadline = start + int(seconds * 1e9)
    while len(fp) < MAX_PAIRS:
        first_fp = len(fp) % 2 == 0
        for which in ("fp", "q") if first_fp else ("q", "fp"):
            t0 = clock()
            (run_fp32 if which == "fp" else run_int8)()
            dt = clock() - t0
            (fp if which == "fp" else q).append(max(dt, 1))
        n = len(fp)
        if n >= MIN_PAIRS and (n % 8 == 0 or clock() >= deadline):
            ratio, ci = median_interval(np.asarray(q, np.float64) / np.asarray(fp, np.float64))
            if ci.high - ci.low <= 2 * PRECISION * ratio or clock() >= deadline:
                break
    ratio, ci = median_interval(np.asarray(q, np.float64) / np.asarray(fp, np.float64))
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


def batched(feeds: list[dict], batch: int) -> dict:
    """`batch` feeds stacked along their first axis (every input's batch axis)."""
    picked = [feeds[i % len(feeds)] for i in range(batch)]
    return {k: np.concatenate([f[k] for f in picked], axis=0) for k in picked[0]}


def measure(
    fp32_path, int8_path, names: list[str], feeds: list[dict], batchable: bool
) -> tuple[list[Timing], list[str]]:
    """Every configuration's timing, and notes on configurations that could not run."""
    from ..onnxio import session

    batches = (1, LARGE_BATCH) if batchable else (1,)
    out: list[Timing] = []
    notes: list[str] = []
    for threads in ("1", "default"):
        n = 1 if threads == "1" else 0  # 0: ONNX Runtime's default pool
        s_fp, s_q = session(fp32_path, threads=n), session(int8_path, threads=n)
        for batch in batches:
            feed = feeds[0] if batch == 1 else batched(feeds, batch)
            run_fp, run_q = partial(s_fp.run, names, feed), partial(s_q.run, names, feed)
            try:
                run_fp()
                run_q()
            except Exception as e:  # a graph whose first axis is not really a free batch axis
                note = f"batch {batch} not timed: {type(e).__name__}"
                notes += [note] if note not in notes else []
                continue
            out.append(time_pair(run_fp, run_q, threads=threads, batch=batch))
    return out, notes


def cpu_label() -> str:
    """The CPU and the integer kernel family ONNX Runtime uses on it, for a warning line."""
    from ..cpu import cpu_info, int8_kernels

    return f"{cpu_info()['model']}, int8 kernels {int8_kernels()['family']}"


def block(timings: list[Timing], notes: list[str]) -> dict:
    """The row's `latency` block (results JSON): every configuration, how they were timed, where."""
    from ..cpu import cpu_info, int8_kernels

    return {
        "method": METHOD,
        "cpu": cpu_info()["model"],
        "int8_kernels": int8_kernels()["family"],
        "default_threads": default_threads(),
        "timings": [t.to_json() for t in timings],
        "notes": notes,
    }


def _advice(mode: str) -> str:
    if mode == "dynamic":
        return "keep fp32 (quant_mode fp32) or try static PTQ, whose graph does not compute activation ranges per run"
    return "keep fp32 (quant_mode fp32) for CPUs like this one"


def headline(timings: list[Timing]) -> Timing | None:
    """The configuration tables show: 1 thread, batch 1 (how a small model is usually run)."""
    return next((t for t in timings if t.threads == "1" and t.batch == 1), timings[0] if timings else None)


def speed_warnings(mode: str, timings: list[Timing]) -> tuple[str, ...]:
    """One plain line when int8 is measurably slower than fp32 here in some configuration, or no
    faster in any, with the figures."""
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
        h = headline(timings)
        assert h is not None
        return (
            f"int8 runs no faster than fp32 on this CPU in any configuration timed ({h.label}: "
            f"{h.ratio:.2f}x, 95% {h.ratio_ci.low:.2f}-{h.ratio_ci.high:.2f}x; {cpu_label()}); its gain here is "
            "the file size only",
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
