"""Running one model's fp32 and int8 sessions on the gate's samples: in batches where that gives
exactly the same outputs, timed as it goes, and stopped when it hangs.

- **Batches.** Where every input's first axis is free, samples can go through ONNX Runtime
  together (per-call overhead dominates small models). Only when that changes nothing: the first
  batch is also run one sample at a time and must agree to the bit (a dynamic-PTQ sidecar, whose
  activation scale is taken over the whole batch, never does), and every later batch re-runs its
  first sample alone as a spot check; any difference and the model is run one sample at a time
  from there on, that batch included. So batching never changes a figure. A batch holds at most
  `BATCH_ELEMENTS` input and output elements (`MAX_BATCH` samples): a 224x224 image model runs
  one sample at a time and its memory does not grow.
- **Timing.** Each ONNX Runtime call is timed; `timing()` is the median wall time per sample of
  each side and their ratio (`results.LoopTiming`), a rough speed figure at no extra cost.
- **Hangs.** A `Watchdog` sets ONNX Runtime's `RunOptions.terminate` on both sessions once the
  model's time is up; the call returns with an error and the model becomes an error row.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

from ..errors import UserError, one_line
from ..results import LoopTiming

BATCH_ELEMENTS = 1 << 14
MAX_BATCH = 256
_PROBE = 8  # samples in the first batch, run both ways
MIN_TIMED = 8  # fewer timed samples give no loop timing


class Watchdog:
    """Terminates the runs of a model whose time is up (`seconds`; inf: never)."""

    def __init__(self, seconds: float):
        import onnxruntime as ort

        self.seconds = seconds
        self.options = ort.RunOptions()
        self.options.log_severity_level = 4
        self.fired = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Watchdog:
        if math.isfinite(self.seconds):
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _fire(self) -> None:
        self.fired = True
        self.options.terminate = True

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def check(self) -> None:
        if self.fired:
            raise TimedOut(self.seconds)


class TimedOut(UserError):
    def __init__(self, seconds: float):
        super().__init__(
            f"timed out: still running after {seconds:g} s (the per-model limit); the others were measured",
            fix="raise --model-timeout, or find the input that makes ONNX Runtime loop (a Loop or Scan op)",
        )


class PairRunner:
    """fp32 and int8 on the same feeds. `run(feeds, first)` -> (fp32, int8), each a list per
    output of per-sample arrays, as `measure.measure` takes them."""

    def __init__(
        self,
        s_fp,
        s_q,
        names: list[str],
        labels: tuple[str, str],
        batchable: bool,
        on_failure: Callable[[str, Exception, dict, int], UserError],
        watchdog: Watchdog | None = None,
    ):
        self.s_fp, self.s_q, self.names = s_fp, s_q, names
        self.labels = labels
        self.on_failure = on_failure
        self.watchdog = watchdog
        self.batchable = batchable
        self.batch = 1  # samples per call once `probe` has agreed
        self.mode = "unknown" if batchable else "single"  # "single", "batched"
        self.seconds = [0.0, 0.0]
        self.timed = 0
        self._per_sample: tuple[list[float], list[float]] = ([], [])  # each call's time per sample

    # -- one call ---------------------------------------------------------------------------------
    def _call(self, side: int, feed: dict, first: int, *, batched: bool = False) -> list:
        sess = (self.s_fp, self.s_q)[side]
        opts = self.watchdog.options if self.watchdog is not None else None
        t0 = time.perf_counter()
        try:
            out = sess.run(self.names, feed, opts)
        except Exception as e:
            if self.watchdog is not None:
                self.watchdog.check()
            if batched:  # the model does not take this batch after all: one at a time
                raise _NoBatch from None
            raise self.on_failure(self.labels[side], e, feed, first) from None
        took = time.perf_counter() - t0
        self.seconds[side] += took
        rows = next((int(np.shape(v)[0]) for v in feed.values() if np.ndim(v)), 1) if self.mode == "batched" else 1
        self._per_sample[side].append(took / max(rows, 1))
        return out

    def _single(self, feeds: list[dict], first: int) -> tuple[list[list], list[list]]:
        fp: list[list] = [[] for _ in self.names]
        q: list[list] = [[] for _ in self.names]
        for j, feed in enumerate(feeds):
            a = self._call(0, feed, first + j)
            b = self._call(1, feed, first + j)
            for k in range(len(self.names)):
                fp[k].append(a[k])
                q[k].append(b[k])
        self.timed += len(feeds)
        return fp, q

    def _batched(self, feeds: list[dict], first: int) -> tuple[list[list], list[list]] | None:
        """The feeds as one call per side, split back per sample; None when the model does not
        take the batch or a sample's rows cannot be told apart (an output whose first axis is
        not the batch)."""
        lead = {int(np.shape(v)[0]) if np.ndim(v) else -1 for f in feeds for v in f.values()}
        if len(lead) != 1 or -1 in lead:
            return None
        per = lead.pop()
        feed = {k: np.concatenate([f[k] for f in feeds], axis=0) for k in feeds[0]}
        try:
            a = self._call(0, feed, first, batched=True)
            b = self._call(1, feed, first, batched=True)
        except _NoBatch:
            return None
        out: tuple[list[list], list[list]] = ([], [])
        for side, vals in ((0, a), (1, b)):
            for v in vals:
                v = np.asarray(v)
                if v.ndim == 0 or v.shape[0] != per * len(feeds):
                    return None
                out[side].append([v[j * per : (j + 1) * per] for j in range(len(feeds))])
        self.timed += len(feeds)
        return out

    def _state(self) -> tuple:
        return self.timed, list(self.seconds), len(self._per_sample[0]), len(self._per_sample[1])

    def _reset(self, state: tuple) -> None:
        self.timed, self.seconds = state[0], list(state[1])
        del self._per_sample[0][state[2] :], self._per_sample[1][state[3] :]

    # -- what measure calls -------------------------------------------------------------------------
    def batch_for(self, feed: dict) -> int:
        """How many samples `measure` should pass in the next call: the probe batch first, then
        as many as `BATCH_ELEMENTS` allows; 1 when batches do not give the same outputs."""
        if self.mode == "single":
            return 1
        elems = sum(int(np.size(v)) for v in feed.values()) + self.out_elements
        size = int(max(1, min(MAX_BATCH, BATCH_ELEMENTS // max(elems, 1))))
        if size <= 1:
            self.mode = "single"
            return 1
        if self.mode == "unknown":
            return min(_PROBE, size)
        self.batch = size
        return size

    out_elements = 0  # one sample's output elements, once known

    def run(self, feeds: list[dict], first: int) -> tuple[list[list], list[list]]:
        if self.mode == "single" or (self.mode == "unknown" and len(feeds) == 1):
            one = self._single(feeds, first)
            self.out_elements = sum(int(np.size(v[0])) for v in one[0])
            return one
        if self.mode == "unknown":  # the first batch: one at a time (what counts) and batched (the check)
            single = self._single(feeds, first)
            self.out_elements = sum(int(np.size(v[0])) for v in single[0])
            state = self._state()
            batched = self._batched(feeds, first)
            self._reset(state)  # the check is not part of the loop's timing
            self.mode = "batched" if batched is not None and _identical(single, batched) else "single"
            return single
        state = self._state()
        out = self._batched(feeds, first)
        if out is not None:
            inner = self._state()
            check = self._single([feeds[0], feeds[-1]], first)  # spot check: the batch's two ends alone
            self._reset(inner)
            ends = ([[c[0], c[-1]] for c in out[0]], [[c[0], c[-1]] for c in out[1]])
            if _identical(check, ends):
                return out
        self._reset(state)
        self.mode = "single"  # a difference after all: one at a time from here, this batch included
        return self._single(feeds, first)

    def timing(self) -> LoopTiming | None:
        """Median time per sample of each side's calls (the first calls of a session, which pay
        for its allocations, and the odd hiccup of a shared machine do not move a median)."""
        fp, q = self._per_sample
        if self.timed < MIN_TIMED or len(fp) < 3 or len(q) < 3:
            return None
        fp_ms, q_ms = float(np.median(fp)) * 1e3, float(np.median(q)) * 1e3
        if fp_ms <= 0:
            return None
        return LoopTiming(
            fp32_ms=round(fp_ms, 6),
            int8_ms=round(q_ms, 6),
            ratio=round(q_ms / fp_ms, 4),
            samples=self.timed,
            batch=min(self.batch, self.timed) if self.mode == "batched" else 1,
        )


class _NoBatch(Exception):
    pass


def _identical(a: tuple[list[list], list[list]], b: tuple[list[list], list[list]]) -> bool:
    for side in (0, 1):
        for xs, ys in zip(a[side], b[side], strict=True):
            for x, y in zip(xs, ys, strict=True):
                x, y = np.asarray(x), np.asarray(y)
                if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
                    return False
    return True


def describe_failure(label: str, e: Exception, feed: dict, i: int, hint: str) -> UserError:
    shapes = ", ".join(f"{k}{list(np.shape(v))}" for k, v in feed.items())
    return UserError(f"{label}: fails on sample {i} with inputs {shapes}: {one_line(e, 240)}{hint}")
