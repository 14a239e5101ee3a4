"""The per-sample sums of one output (`OutputSums`): what the gate keeps of each sample it runs.

Each gated sample adds one row of sums over its elements (gate/estimate.py turns the column
totals into the figures, and resamples the rows for their intervals). Values are centred on a
reference (the first sample's means) so that the pooled variance is not the small difference of
two large numbers, and scaled by a power of two to about 1 before they are squared.

Rows are kept per sample up to 2 * `ROW_CAP` (4,096); past that, neighbouring rows are summed
pairwise (blocks of 2, 4, ... consecutive samples, still independent of each other). The blocks at n
samples depend on n only, so the same samples give the same figures however they were reached,
and neither memory nor the bootstrap's cost grows past `ROW_CAP` rows.
"""

from __future__ import annotations

import math

import numpy as np

# Columns of a row of sums.
N, SX, SY, SXX, SYY, SXY, SX2, SEE, SE = range(9)
COLUMNS = 9
# At most 2 * ROW_CAP rows per output; then pairs are summed (see the module docstring).
ROW_CAP = 2048
# Raw values held before they are folded into rows: a few MB, whatever the output's size.
FOLD_ELEMENTS = 1 << 18
# Values are scaled by a power of two to about 1 before they are squared (float64 overflows past
# about 1e154 squared); past this the rows are rescaled.
_RESCALE_ABOVE = 2.0**200


class OutputSums:
    """Per-sample sums of one output, fed one sample (or a batch of samples) at a time; also the
    extremes and the worst single error with its sample index, which do not resample."""

    def __init__(self) -> None:
        self._rows = np.zeros((0, COLUMNS))
        self._count = 0  # rows filled
        self.block = 1  # samples per row
        self._partial = np.zeros(COLUMNS)
        self._partial_n = 0
        self._buf_x: list[np.ndarray] = []
        self._buf_y: list[np.ndarray] = []
        self._buf_first = 0  # sample index of the first buffered sample
        self._buf_elems = 0
        self.seen = 0  # samples added (kept or not)
        self.kept = 0  # samples folded into the rows (finite, same size on both sides)
        self.scale = 0.0  # values are multiplied by this before any sum (0: not chosen yet)
        self.ref: tuple[float, float] | None = None
        self.max_abs_error = 0.0
        self.worst_sample: int | None = None
        self.fp32_min = np.inf
        self.fp32_max = -np.inf
        self.int8_min = np.inf
        self.int8_max = -np.inf
        self.size_mismatch: tuple[int, int, int] | None = None  # (sample, fp32 size, int8 size)
        self.fp32_nonfinite: int | None = None  # first sample where fp32 is NaN/inf
        self.int8_nonfinite: int | None = None  # first sample where int8 is and fp32 is not
        self.sizes: set[int] = set()

    # -- feeding ------------------------------------------------------------------------------
    def add(self, fp32, int8, index: int | None = None) -> None:
        """One sample's fp32 and int8 values (any shape; flattened)."""
        x, y = np.asarray(fp32).ravel(), np.asarray(int8).ravel()
        i = self.seen if index is None else index
        self.seen += 1
        if x.size != y.size:
            self.size_mismatch = self.size_mismatch or (i, x.size, y.size)
            return
        if x.size == 0:
            return
        self.sizes.add(x.size)
        if self._buf_x and x.size != self._buf_x[0].size:  # a sample of another size: fold what is held
            self._flush()
        if not self._buf_x:
            self._buf_first = i
        self._buf_x.append(x)
        self._buf_y.append(y)
        self._buf_elems += x.size
        if self._buf_elems >= FOLD_ELEMENTS:
            self._flush()

    def add_many(self, fp32: np.ndarray, int8: np.ndarray, first: int | None = None) -> None:
        """Samples of one size at once: `fp32` and `int8` are (samples, values)."""
        self._flush()
        x, y = np.asarray(fp32), np.asarray(int8)
        i = self.seen if first is None else first
        self.seen += len(x)
        if x.shape != y.shape:
            self.size_mismatch = self.size_mismatch or (i, x[0].size, y[0].size)
            return
        if x.size == 0:
            return
        self.sizes.add(x[0].size)
        step = max(1, FOLD_ELEMENTS // max(x[0].size, 1))
        for j in range(0, len(x), step):
            self._fold_values(
                x[j : j + step].reshape(len(x[j : j + step]), -1),
                y[j : j + step].reshape(len(x[j : j + step]), -1),
                i + j,
            )

    def _flush(self) -> None:
        if not self._buf_x:
            return
        xs, ys, first = self._buf_x, self._buf_y, self._buf_first
        self._buf_x, self._buf_y, self._buf_elems = [], [], 0
        self._fold_values(np.stack(xs), np.stack(ys), first)

    def _fold_values(self, x: np.ndarray, y: np.ndarray, first: int) -> None:
        """Fold samples (rows of `x`, `y`) whose first has index `first`."""
        x = x.astype(np.float64)
        y = y.astype(np.float64)
        fx, fy = np.isfinite(x).all(axis=1), np.isfinite(y).all(axis=1)
        if not fx.all() and self.fp32_nonfinite is None:
            self.fp32_nonfinite = first + int(np.argmin(fx))
        bad_q = ~fy & fx
        if bad_q.any() and self.int8_nonfinite is None:
            self.int8_nonfinite = first + int(np.argmax(bad_q))
        keep = fx & fy
        if not keep.all():
            idx = np.flatnonzero(keep)
            x, y = x[idx], y[idx]
        else:
            idx = np.arange(len(x))
        if not len(x):
            return
        self.fp32_min, self.fp32_max = min(self.fp32_min, float(x.min())), max(self.fp32_max, float(x.max()))
        self.int8_min, self.int8_max = min(self.int8_min, float(y.min())), max(self.int8_max, float(y.max()))
        top = max(float(np.abs(x).max()), float(np.abs(y).max()))
        if self.scale == 0.0:
            if top == 0.0:
                self.scale = 1.0
            else:
                self.scale = math.ldexp(1.0, -math.frexp(top)[1])  # a power of two: exact
        elif top * self.scale > _RESCALE_ABOVE:
            self._rescale(math.ldexp(1.0, -math.frexp(top * self.scale)[1]))
        s = self.scale
        x *= s
        y *= s
        if self.ref is None:
            self.ref = (float(x[0].mean()), float(y[0].mean()))
        e = y - x
        worst = np.abs(e).max(axis=1)
        w = int(np.argmax(worst))
        if worst[w] / s > self.max_abs_error or self.worst_sample is None:
            if worst[w] / s > self.max_abs_error:
                self.max_abs_error = float(worst[w] / s)
                self.worst_sample = first + int(idx[w])
            elif self.worst_sample is None:
                self.worst_sample = first + int(idx[w])
        cx, cy = self.ref
        rows = np.empty((len(x), COLUMNS))
        rows[:, N] = x.shape[1]
        rows[:, SX2] = np.einsum("ij,ij->i", x, x)
        rows[:, SEE] = np.einsum("ij,ij->i", e, e)
        rows[:, SE] = e.sum(1)
        del e
        x -= cx
        y -= cy
        rows[:, SX] = x.sum(1)
        rows[:, SY] = y.sum(1)
        rows[:, SXX] = np.einsum("ij,ij->i", x, x)
        rows[:, SYY] = np.einsum("ij,ij->i", y, y)
        rows[:, SXY] = np.einsum("ij,ij->i", x, y)
        self._fold(rows)

    def _rescale(self, f: float) -> None:
        """Multiply every value seen so far by `f` (a power of two)."""
        for a in (self._rows[: self._count], self._partial[None, :]):
            a[:, [SX, SY, SE]] *= f
            a[:, [SXX, SYY, SXY, SX2, SEE]] *= f * f
        if self.ref is not None:
            self.ref = (self.ref[0] * f, self.ref[1] * f)
        self.scale *= f

    def _fold(self, rows: np.ndarray) -> None:
        """Add per-sample rows in order, summing `block` consecutive samples per kept row."""
        i = 0
        while i < len(rows):
            if self._count == 2 * ROW_CAP:
                self._merge()
            if self._partial_n or (self.block > 1 and len(rows) - i < self.block):
                take = min(self.block - self._partial_n, len(rows) - i)
                self._partial += rows[i : i + take].sum(axis=0)
                self._partial_n += take
                self.kept += take
                i += take
                if self._partial_n == self.block:
                    self._append(self._partial[None, :])
                    self._partial = np.zeros(COLUMNS)
                    self._partial_n = 0
                continue
            room = 2 * ROW_CAP - self._count
            whole = min((len(rows) - i) // self.block, room)
            chunk = rows[i : i + whole * self.block]
            if self.block > 1:
                chunk = chunk.reshape(whole, self.block, COLUMNS).sum(axis=1)
            self._append(chunk)
            self.kept += whole * self.block
            i += whole * self.block

    def _append(self, rows: np.ndarray) -> None:
        if self._count + len(rows) > len(self._rows):
            grown = np.zeros((min(2 * ROW_CAP, max(2 * len(self._rows), self._count + len(rows), 64)), COLUMNS))
            grown[: self._count] = self._rows[: self._count]
            self._rows = grown
        self._rows[self._count : self._count + len(rows)] = rows
        self._count += len(rows)

    def _merge(self) -> None:
        """Sum neighbouring pairs of rows: half the rows, blocks twice as long (only once all
        2 * ROW_CAP rows are full and another sample comes: n samples, n a power of two, are
        min(n, 2 * ROW_CAP) rows)."""
        self._rows[:ROW_CAP] = self._rows[0::2] + self._rows[1::2]
        self._rows[ROW_CAP:] = 0.0
        self._count = ROW_CAP
        self.block *= 2

    # -- reading ------------------------------------------------------------------------------
    @property
    def samples(self) -> int:
        self._flush()
        return self.kept

    def matrix(self) -> np.ndarray:
        """The rows (one per sample, or per block of `block` samples, the last one maybe shorter)."""
        self._flush()
        rows = self._rows[: self._count]
        if self._partial_n:
            rows = np.vstack([rows, self._partial[None, :]])
        return rows

    def snapshot(self) -> dict:
        """Everything needed to go back to this point (`restore`): small, the rows are bounded."""
        self._flush()
        state = dict(self.__dict__)
        state["_rows"] = self._rows[: self._count].copy()
        state["_partial"] = self._partial.copy()
        state["sizes"] = set(self.sizes)
        return state

    def restore(self, state: dict) -> None:
        self.__dict__.update(state)
        self._rows = state["_rows"].copy()
        self._partial = state["_partial"].copy()
        self.sizes = set(state["sizes"])
        # the snapshot was taken with nothing buffered; the buffer lists it shares have filled since
        self._buf_x, self._buf_y, self._buf_elems = [], [], 0
