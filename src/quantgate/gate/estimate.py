"""The fidelity figures of one output and their uncertainty — pure numpy, no ONNX Runtime.

Each gated sample adds one row of sums (its elements are not independent draws, so the sample,
not the element, is the unit of resampling). The figures come from the column totals:

- drop = 1 - PLCC of the fp32 and int8 values of every sample, pooled;
- SQNR (dB) = 10 log10(sum fp32^2 / sum (int8 - fp32)^2), RMSE, NMSE;
- rel_rmse = RMSE / max(std of fp32, 5 % of its RMS): how large the error is against the output's
  own spread;
- gain_offset: the RMS of the error's affine part (int8 = c + g fp32 + noise, fitted by least
  squares: the gain and offset error 1 - PLCC cannot see) against the fp32 output's RMS: a gain
  of 1.1, or an offset of 10 % of the RMS, is 0.1 on any output;
- the worst single error, and the sample that caused it.

Every figure is a smooth function f(T) of the column totals T, unchanged when T is scaled, so a
sample's influence on it is linear: n * grad f(T) . row. That gives each figure a standard error
without resampling (the pilot plans the sampling from it, gate/measure.py).

The interval (`estimate`) is a cluster bootstrap with a tail allowance:

1. whole samples are drawn with replacement (`BOOTSTRAP_REPLICATES` replicates from a seeded
   generator, streamed `REPLICATE_CHUNK` at a time, so memory does not grow with the count),
   and the interval is the BCa one of the replicates' figures (bias-corrected and accelerated,
   the acceleration from a leave-one-sample-out jackknife);
2. each side is then widened by `TAIL_ALLOWANCE` times the largest change one sample makes to
   the figure in that direction (from the same jackknife). A kind of sample seen once in n may
   occur up to 5.6 times as often in the population (the Poisson 97.5 % bound for a count of
   one); the bootstrap, which only reshuffles what was seen, cannot know that. Where no sample
   dominates, the allowance is negligible.

The simulation in tests/unit/test_coverage.py (and bench/coverage.py, with more trials)
measures what this covers; docs/measurement.md has the table. Plain BCa covered the drop of
heavy-tailed errors (t(3), kurtosis 45) in only 55-85 % of runs.

Rows are kept per sample up to 2 * `ROW_CAP` (4,096); past that, neighbouring rows are summed
pairwise (blocks of 2, 4, ... consecutive samples, still independent of each other). The blocks at n
samples depend on n only, so the same samples give the same figures however they were reached,
and neither memory nor the bootstrap's cost grows past `ROW_CAP` rows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ..results import Interval

# Columns of a row of sums. Values are centred on a reference (the first sample's means) so that
# the pooled variance is not the small difference of two large numbers.
N, SX, SY, SXX, SYY, SXY, SX2, SEE, SE = range(9)
COLUMNS = 9
FIGURES = ("drop", "sqnr_db", "rmse", "rel_rmse", "gain_offset")
BOOTSTRAP_REPLICATES = 1000
REPLICATE_CHUNK = 25
CONFIDENCE = 0.95
TAIL_ALLOWANCE = 5.0
# At most 2 * ROW_CAP rows per output; then pairs are summed (see the module docstring).
ROW_CAP = 2048
# Raw values held before they are folded into rows: a few MB, whatever the output's size.
FOLD_ELEMENTS = 1 << 18
# rel_rmse's scale: the fp32 output's standard deviation, or this share of its RMS when the
# output barely varies (a near-constant score must not fail for an error nobody would see).
SCALE_RMS_SHARE = 0.05
# A variance below this share of the second moment is zero: rounding, not spread.
_ZERO_VARIANCE = 1e-12
# Values are scaled by a power of two to about 1 before they are squared (float64 overflows past
# about 1e154 squared); past this the rows are rescaled.
_RESCALE_ABOVE = 2.0**200
_NORMAL = NormalDist()


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


# -- the figures and their gradients -------------------------------------------------------------
def _parts(t: np.ndarray):
    n, sx, sy = t[..., N], t[..., SX], t[..., SY]
    a = n * t[..., SXY] - sx * sy
    bx = n * t[..., SXX] - sx * sx
    cy = n * t[..., SYY] - sy * sy
    return n, sx, sy, a, bx, cy


def figures(t: np.ndarray, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Figures from column totals; `t` is (COLUMNS,) or (k, COLUMNS). NaN where a figure is
    undefined: no spread in fp32 or int8 (PLCC), no error at all (SQNR)."""
    n, _sx, _sy, a, bx, cy = _parts(t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # a variance that is rounding noise against the second moment is no variance: undefined
        spread = (bx > _ZERO_VARIANCE * n * t[..., SXX]) & (cy > _ZERO_VARIANCE * n * t[..., SYY])
        plcc = np.where(spread, np.clip(a / np.sqrt(bx * cy), -1.0, 1.0), np.nan)
        mse = t[..., SEE] / n
        ms = t[..., SX2] / n
        sd = np.sqrt(np.maximum(bx, 0.0)) / n
        scale_ = np.maximum(sd, SCALE_RMS_SHARE * np.sqrt(ms))
        return {
            "drop": 1.0 - plcc,
            "plcc": plcc,
            "sqnr_db": 10.0 * np.log10(t[..., SX2] / t[..., SEE]),
            "rmse": np.sqrt(mse) / scale,
            "nmse": t[..., SEE] / t[..., SX2],
            "rel_rmse": np.sqrt(mse) / scale_,
            "gain_offset": np.sqrt(_affine_ms(t, n, a, bx) / ms),
        }


def _affine_ms(t, n, a, bx):
    """Mean square of the error's affine part: int8 = c + g fp32 + noise fitted by least squares,
    the part (c + (g - 1) fp32) of int8 - fp32 that 1 - PLCC cannot see: (mean error)^2 +
    (g - 1)^2 var(fp32), with g - 1 = (A - B) / B."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = t[..., SE] / n
        return d * d + np.where(bx > 0, (a - bx) ** 2 / (bx * n * n), 0.0)


def gradients(t: np.ndarray, scale: float = 1.0) -> dict[str, np.ndarray]:
    """d figure / d T for every figure in FIGURES, shape like `t`."""
    n, sx, sy, a, bx, cy = _parts(t)
    z = np.zeros_like(n)
    g = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rho = a / np.sqrt(bx * cy)
        # d rho = rho (dA/A - dB/2B - dC/2C); d drop = -d rho
        da = np.stack([t[..., SXY], -sy, -sx, z, z, n, z, z, z], axis=-1)
        db = np.stack([t[..., SXX], -2 * sx, z, n, z, z, z, z, z], axis=-1)
        dc = np.stack([t[..., SYY], z, -2 * sy, z, n, z, z, z, z], axis=-1)
        g["drop"] = -rho[..., None] * (da / a[..., None] - db / (2 * bx[..., None]) - dc / (2 * cy[..., None]))
        # rho = 0 exactly (no correlation) makes the form above 0/0; its derivative is dA / sqrt(BC)
        g["drop"] = np.where((a == 0)[..., None], -da / np.sqrt(bx * cy)[..., None], g["drop"])

        def unit(col: int) -> np.ndarray:
            u = np.zeros(t.shape)
            u[..., col] = 1.0
            return u

        d_see, d_x2, d_n, d_se = unit(SEE), unit(SX2), unit(N), unit(SE)
        see, x2 = t[..., SEE][..., None], t[..., SX2][..., None]
        nn = n[..., None]
        g["sqnr_db"] = (10.0 / np.log(10.0)) * (d_x2 / x2 - d_see / see)
        rmse = np.sqrt(t[..., SEE] / n)[..., None] / scale
        g["rmse"] = rmse * 0.5 * (d_see / see - d_n / nn)
        sd = np.sqrt(np.maximum(bx, 0.0)) / n
        rms_part = SCALE_RMS_SHARE * np.sqrt(t[..., SX2] / n)
        by_sd = (sd >= rms_part)[..., None]
        dlog_scale = np.where(by_sd, db / (2 * bx[..., None]) - d_n / nn, 0.5 * (d_x2 / x2 - d_n / nn))
        rel = (np.sqrt(t[..., SEE] / n) / np.maximum(sd, rms_part))[..., None]
        g["rel_rmse"] = rel * (0.5 * (d_see / see - d_n / nn) - dlog_scale)
        # gain_offset = sqrt(u + w) / scale, u = (SE/n)^2, w = (A - B)^2 / (B n^2)
        se_ = t[..., SE][..., None]
        bb, amb = bx[..., None], (a - bx)[..., None]
        du = 2 * se_ / nn**2 * (d_se - se_ * d_n / nn)
        w = amb**2 / (bb * nn**2)
        dw = 2 * amb * (da - db) / (bb * nn**2) - w * (db / bb + 2 * d_n / nn)
        ms = _affine_ms(t, n, a, bx)[..., None]
        go = np.sqrt(ms / (x2 / nn))
        g["gain_offset"] = np.where(ms > 0, go * (0.5 * (du + dw) / ms - 0.5 * (d_x2 / x2 - d_n / nn)), 0.0)
    return g


# -- resampling ----------------------------------------------------------------------------------
def resample_weights(samples: int, rng: np.random.Generator, replicates: int) -> np.ndarray:
    """(replicates, samples) counts: how often each sample is drawn in each bootstrap replicate."""
    idx = rng.integers(0, samples, size=(replicates, samples))
    flat = (np.arange(replicates)[:, None] * samples + idx).ravel()
    return np.bincount(flat, minlength=replicates * samples).reshape(replicates, samples).astype(np.float64)


@dataclass(frozen=True)
class Estimate:
    """One output's figures at one look: the point values, standard errors, tail allowances
    and intervals at the look's confidence level (None where a figure is undefined)."""

    point: dict[str, float]
    se: dict[str, float]
    allowance: dict[str, tuple[float, float]]  # (down, up): the largest one-sample change each way
    intervals: dict[str, Interval | None]
    level: float  # two-sided confidence of the intervals
    samples: int


_LOWER_BOUND = {"drop": 0.0, "rmse": 0.0, "rel_rmse": 0.0, "gain_offset": 0.0}
_UPPER_BOUND = {"drop": 2.0}


@dataclass(frozen=True)
class Linear:
    """What needs no resampling: point figures, their standard errors (from each sample's
    linear influence), the leave-one-out (jackknife) figures, and each figure's tail allowance
    (the largest change leaving one sample out makes, down and up)."""

    point: dict[str, float]
    se: dict[str, float]
    jack: dict[str, np.ndarray] | None
    allowance: dict[str, tuple[float, float]]


def linear(sums: OutputSums) -> Linear:
    return linear_rows(sums.matrix(), sums.scale or 1.0)


def linear_rows(m: np.ndarray, scale: float = 1.0) -> Linear:
    """`Linear` of the rows `m` (values multiplied by `scale` before they were summed)."""
    total = m.sum(axis=0)
    point = {k: float(v) for k, v in figures(total, scale).items()}
    grads = gradients(total, scale)
    jack = figures(total[None, :] - m, scale) if len(m) > 1 else None
    se, allowance = {}, {}
    for k in FIGURES:
        with np.errstate(invalid="ignore", over="ignore"):
            infl = m @ grads[k]
            se[k] = float(np.sqrt(np.sum(infl * infl)))
        if jack is None or not np.isfinite(point[k]) or not np.all(np.isfinite(jack[k])):
            # no second sample, or leaving one out makes the figure undefined: it rests on that sample
            allowance[k] = (math.inf, math.inf)
            continue
        change = point[k] - jack[k]  # > 0: that sample pushes the figure up
        allowance[k] = (float(max(-change.min(), 0.0)), float(max(change.max(), 0.0)))
    return Linear(point, se, jack, allowance)


def replicate_rows(m: np.ndarray, seed, scale: float = 1.0) -> dict[str, np.ndarray]:
    """The figures of `BOOTSTRAP_REPLICATES` cluster-bootstrap replicates of the rows `m` (whole
    rows drawn with replacement from `numpy.random.default_rng(seed)`, `REPLICATE_CHUNK`
    replicates at a time: memory stays at a chunk's weights however many samples there are)."""
    out = {k: np.empty(BOOTSTRAP_REPLICATES) for k in FIGURES}
    for done, w in replicate_weights(len(m), seed):
        f = figures(w @ m, scale)
        for k in FIGURES:
            out[k][done : done + len(w)] = f[k]
    return out


def replicate_weights(rows: int, seed):
    """(first replicate, weights of the next `REPLICATE_CHUNK` replicates) in order: the draws
    every bootstrap of `rows` rows with this seed makes."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < BOOTSTRAP_REPLICATES:
        b = min(REPLICATE_CHUNK, BOOTSTRAP_REPLICATES - done)
        yield done, resample_weights(rows, rng, b)
        done += b


def estimate(sums: OutputSums, seed, level: float = CONFIDENCE) -> Estimate:
    """The figures of `sums` with their intervals at two-sided `level` (`intervals_of`)."""
    m = sums.matrix()
    scale = sums.scale or 1.0
    lin = linear_rows(m, scale)
    reps = replicate_rows(m, seed, scale) if len(m) > 1 else None
    return Estimate(lin.point, lin.se, lin.allowance, intervals_of(lin, reps, level), level, sums.samples)


def intervals_of(
    lin: Linear, reps: dict[str, np.ndarray] | None, level: float, allowance: float = TAIL_ALLOWANCE
) -> dict[str, Interval | None]:
    """Each figure's interval at two-sided `level`: BCa percentiles of the bootstrap replicates
    `reps`, each side widened by `allowance` times the figure's largest one-sample change that way."""
    out: dict[str, Interval | None] = dict.fromkeys(FIGURES)
    if reps is None or lin.jack is None:
        return out
    for k in FIGURES:
        ci = interval(reps[k], lin.point[k], lin.jack[k], level)
        out[k] = widen(k, ci, lin.point[k], lin.allowance[k], allowance)
    return out


def interval(
    values: np.ndarray, estimate: float | None = None, jack: np.ndarray | None = None, level: float = CONFIDENCE
) -> Interval | None:
    """The `level` interval of finite bootstrap replicates. With the point `estimate` and the
    `jack`knife values it is the BCa interval (bias-corrected and accelerated: the drop's
    replicates are skewed); without them, plain percentiles. None when too few replicates are
    finite: a figure undefined in most replicates has no interval."""
    v = values[np.isfinite(values)]
    if v.size < 0.9 * values.size or v.size == 0:
        return None
    a = (1.0 - level) / 2.0
    qs = [a, 1.0 - a]
    if estimate is not None and np.isfinite(estimate):
        below = float(np.mean(v < estimate)) + 0.5 * float(np.mean(v == estimate))
        z0 = _NORMAL.inv_cdf(min(max(below, 1.0 / v.size), 1.0 - 1.0 / v.size))
        accel = 0.0
        if jack is not None and np.all(np.isfinite(jack)) and jack.size > 2:
            d = jack.mean() - jack
            denom = 6.0 * float((d * d).sum()) ** 1.5
            accel = float((d**3).sum()) / denom if denom > 0 else 0.0
        qs = []
        for q in (a, 1.0 - a):
            z = z0 + _NORMAL.inv_cdf(q)
            qs.append(_NORMAL.cdf(z0 + z / (1.0 - accel * z)))
    lo, hi = np.quantile(v, qs)
    return Interval(float(lo), float(hi))


def widen(key: str, ci: Interval | None, theta: float, allowance: tuple[float, float], k: float) -> Interval | None:
    """`ci` with each side moved out by `k` times the figure's largest one-sample change that
    way, kept inside the figure's range; None when the figure rests on single samples."""
    if ci is None or not np.isfinite(theta) or not all(np.isfinite(allowance)):
        return None
    down, up = allowance
    lo = max(min(ci.low, theta) - k * down, _LOWER_BOUND.get(key, -math.inf))
    hi = min(max(ci.high, theta) + k * up, _UPPER_BOUND.get(key, math.inf))
    return Interval(float(lo), float(hi))


# -- how many looks cost ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def look_level(steps: tuple[int, ...], confidence: float = CONFIDENCE) -> float:
    """The two-sided confidence each look of a sequential schedule must use so that the chance
    of any look's interval missing the truth is 1 - `confidence` in all (a Pocock-type constant
    boundary): z with P(max_k |Z_k| > z) = 1 - confidence, where Z_k is the standardised sum at
    the k-th look's sample count. Found by simulation from a fixed seed: the same schedule always
    gives the same level."""
    if len(steps) <= 1:
        return confidence
    n = np.asarray(steps, dtype=np.float64)
    rng = np.random.default_rng(0x5E0)
    chunks, per = 20, 10_000  # 200,000 random walks, 10,000 at a time: a few MB at most
    z = np.empty(chunks * per)
    for c in range(chunks):
        inc = rng.standard_normal((per, len(n))) * np.sqrt(np.diff(n, prepend=0.0))
        z[c * per : (c + 1) * per] = np.abs(np.cumsum(inc, axis=1) / np.sqrt(n)).max(axis=1)
    crit = float(np.quantile(z, confidence))
    return 1.0 - 2.0 * (1.0 - _NORMAL.cdf(crit))


def reference_plcc(fp32: np.ndarray, int8: np.ndarray) -> float:
    """The reference method's PLCC of two outputs: `numpy.corrcoef` on the flattened raw arrays,
    as the first user's published drops were computed (the gate's own PLCC comes from its sums).
    NaN when either output is constant."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.corrcoef(np.asarray(fp32).ravel(), np.asarray(int8).ravel())[0, 1])
