"""The stepping part of the sampling loop (gate/measure.py plans the looks and judges them):
run samples through both sides up to a count, fold them into each output's sums, and stop only at
a power of two or the target when the time cap says so.

The time cap (`max_seconds`) is checked before each step, from this model's measured time per
sample: a step predicted not to fit is not started. A step that runs past `OVERRUN` times the cap
anyway (the machine slowed down) is abandoned and the sums go back to the last boundary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np

from .settings import GateSettings
from .sums import OutputSums

# The fewest samples an interval is computed from (a time-capped row may stop here).
MIN_FOR_INTERVAL = 16
# A step that runs past this many times the time cap is abandoned (the last boundary's figures stand).
OVERRUN = 2.0

RunPair = Callable[[list[dict], int], tuple[list[list], list[list]]]


def boundaries(done: int, target: int) -> list[int]:
    """The counts between `done` and `target` where a time-capped run may stop: powers of two."""
    out, n = [], MIN_FOR_INTERVAL
    while n < target:
        if n > done:
            out.append(n)
        n *= 2
    return [*out, target]


class Clock:
    def __init__(self, settings: GateSettings, capped: bool):
        self.started = time.perf_counter()
        self.limit = settings.max_seconds if capped else math.inf
        self.per_sample = 0.0  # measured run time per sample

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def fits(self, more: int) -> bool:
        return self.elapsed() + more * self.per_sample <= self.limit

    def overrun(self) -> bool:
        return self.elapsed() > OVERRUN * self.limit


class Stepper:
    """The samples run so far: per output their sums (and, with `keep_values`, the values), the
    count, and the input and output elements of one sample once seen."""

    def __init__(
        self,
        run_pair: RunPair,
        names: list[str],
        feeds: Iterator[dict],
        clock: Clock,
        batch: int | Callable[[dict], int] = 1,
        keep_values: bool = False,
    ):
        self.run_pair, self.names, self.feeds, self.clock, self.batch = run_pair, names, feeds, clock, batch
        self.sums = {n: OutputSums() for n in names}
        self.kept: dict[str, tuple[list, list]] = {n: ([], []) for n in names} if keep_values else {}
        self.done = 0
        self.elements: list[int] = []

    def _chunk(self, target: int) -> list[dict]:
        """The next feeds to run together ([] when the feeds ran out)."""
        feed = next(self.feeds, None)
        if feed is None:
            return []
        chunk = [feed]
        size = self.batch(feed) if callable(self.batch) else self.batch
        for _ in range(min(size, target - self.done) - 1):
            feed = next(self.feeds, None)
            if feed is None:
                break
            chunk.append(feed)
        return chunk

    def advance(self, target: int) -> str:
        """Run samples up to `target`: "ok", "exhausted" (the feeds ran out) or "overrun"."""
        while self.done < target:
            chunk = self._chunk(target)
            if not chunk:
                return "exhausted"
            fp, q = self.run_pair(chunk, self.done)
            if not self.elements:
                self.elements.append(
                    sum(int(np.size(v)) for v in chunk[0].values()) + sum(int(np.size(v[0])) for v in fp)
                )
            for k, n in enumerate(self.names):
                s = self.sums[n]
                for j, (a, b) in enumerate(zip(fp[k], q[k], strict=True)):
                    s.add(a, b, self.done + j)
                    if self.kept:
                        self.kept[n][0].append(np.asarray(a).ravel())
                        self.kept[n][1].append(np.asarray(b).ravel())
            self.done += len(chunk)
            self.clock.per_sample = self.clock.elapsed() / self.done
            if self.clock.overrun():
                return "overrun"
        return "ok"

    def walk(self, target: int) -> str:
        """Advance to `target` through the boundaries; "" or why it stopped short."""
        for boundary in boundaries(self.done, target):
            if self.done >= MIN_FOR_INTERVAL and not self.clock.fits(boundary - self.done):
                return "time cap"
            timed = self.clock.limit < math.inf
            snapshot = ({n: s.snapshot() for n, s in self.sums.items()}, self.done) if timed else None
            status = self.advance(boundary)
            if status == "overrun" and self.done < boundary and snapshot is not None and snapshot[1] > 0:
                for n, s in self.sums.items():  # the machine slowed down mid-step: back to the boundary
                    s.restore(snapshot[0][n])
                for fp32, int8 in self.kept.values():  # and the values kept, one per sample
                    del fp32[snapshot[1] :], int8[snapshot[1] :]
                self.done = snapshot[1]
                return "time cap"
            if status != "ok":
                return "time cap" if status == "overrun" else "exhausted"
        return ""
