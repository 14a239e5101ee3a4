"""The fidelity figures of one output and their uncertainty — pure numpy, no ONNX Runtime.

Each gated sample adds one row of sums (its elements are not independent draws, so the sample,
not the element, is the unit of resampling). The figures come from the column totals:

- drop = 1 - PLCC of the fp32 and int8 values of every sample, pooled;
- SQNR (dB) = 10 log10(sum fp32^2 / sum (int8 - fp32)^2), RMSE, NMSE;
- rel_rmse = RMSE / max(std of fp32, 5 % of its RMS): how large the error is against the output's
  own spread; above 1 the int8 output is off by more than fp32 varies (a gain or offset error
  PLCC cannot see).

A 95 % interval for each comes from a cluster bootstrap: whole samples drawn with replacement,
the sums re-weighted, 1,000 replicates from a seeded generator (so the same rows give the same
interval on every run), BCa percentiles of the replicates (their acceleration from a
leave-one-sample-out jackknife).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from ..results import Interval

# Columns of a sample's row of sums. Values are centred on a reference (the first sample's
# means) so that the pooled variance is not the small difference of two large numbers.
N, SX, SY, SXX, SYY, SXY, SX2, SEE = range(8)
COLUMNS = 8
BOOTSTRAP_REPLICATES = 1000
CONFIDENCE = 0.95
# rel_rmse's scale: the fp32 output's standard deviation, or this share of its RMS when the
# output barely varies (a near-constant score must not fail for an error nobody would see).
SCALE_RMS_SHARE = 0.05
_NORMAL = NormalDist()


class OutputSums:
    """Per-sample sums of one output, fed one sample at a time; also the extremes, which do
    not resample (the worst error is a maximum, not a sum). Samples are buffered and folded in
    blocks of `BLOCK` (one vectorised pass instead of a dozen numpy calls per sample)."""

    BLOCK = 256

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._buf_x: list[np.ndarray] = []
        self._buf_y: list[np.ndarray] = []
        self.ref: tuple[float, float] | None = None
        self.max_abs_error = 0.0
        self.fp32_min = np.inf
        self.fp32_max = -np.inf
        self.int8_min = np.inf
        self.int8_max = -np.inf
        self.size_mismatch: tuple[int, int] | None = None
        self.fp32_nonfinite = False
        self.int8_nonfinite = False

    def add(self, fp32: np.ndarray, int8: np.ndarray) -> None:
        x, y = np.asarray(fp32).ravel(), np.asarray(int8).ravel()
        if x.size != y.size:
            self.size_mismatch = self.size_mismatch or (x.size, y.size)
            return
        if x.size == 0:
            return
        if self._buf_x and x.size != self._buf_x[0].size:  # a sample of another size: fold what is held
            self._flush()
        self._buf_x.append(x)
        self._buf_y.append(y)
        if len(self._buf_x) >= self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        if not self._buf_x:
            return
        x = np.stack(self._buf_x).astype(np.float64)
        y = np.stack(self._buf_y).astype(np.float64)
        self._buf_x, self._buf_y = [], []
        fx, fy = np.isfinite(x).all(axis=1), np.isfinite(y).all(axis=1)
        self.fp32_nonfinite = self.fp32_nonfinite or not fx.all()
        self.int8_nonfinite = self.int8_nonfinite or not (fy | ~fx).all()
        keep = fx & fy
        x, y = x[keep], y[keep]
        if not len(x):
            return
        if self.ref is None:
            self.ref = (float(x[0].mean()), float(y[0].mean()))
        cx, cy = self.ref
        dx, dy, e = x - cx, y - cy, y - x
        n = np.full(len(x), x.shape[1], np.float64)
        self._rows.append(
            np.column_stack(
                [
                    n,
                    dx.sum(1),
                    dy.sum(1),
                    (dx * dx).sum(1),
                    (dy * dy).sum(1),
                    (dx * dy).sum(1),
                    (x * x).sum(1),
                    (e * e).sum(1),
                ]
            )
        )
        self.max_abs_error = max(self.max_abs_error, float(np.abs(e).max()))
        self.fp32_min, self.fp32_max = min(self.fp32_min, float(x.min())), max(self.fp32_max, float(x.max()))
        self.int8_min, self.int8_max = min(self.int8_min, float(y.min())), max(self.int8_max, float(y.max()))

    @property
    def samples(self) -> int:
        self._flush()
        return sum(len(r) for r in self._rows)

    def matrix(self) -> np.ndarray:
        self._flush()
        return np.vstack(self._rows) if self._rows else np.zeros((0, COLUMNS))


def _figures(t: np.ndarray) -> dict[str, np.ndarray]:
    """Figures from column totals; `t` is (COLUMNS,) or (replicates, COLUMNS)."""
    n = t[..., N]
    mx, my = t[..., SX] / n, t[..., SY] / n
    vx = np.maximum(t[..., SXX] / n - mx * mx, 0.0)
    vy = np.maximum(t[..., SYY] / n - my * my, 0.0)
    cov = t[..., SXY] / n - mx * my
    with np.errstate(divide="ignore", invalid="ignore"):
        plcc = np.clip(cov / np.sqrt(vx * vy), -1.0, 1.0)
        mse = t[..., SEE] / n
        ms = t[..., SX2] / n
        scale = np.maximum(np.sqrt(vx), SCALE_RMS_SHARE * np.sqrt(ms))
        return {
            "drop": 1.0 - plcc,
            "sqnr_db": 10.0 * np.log10(t[..., SX2] / t[..., SEE]),
            "rmse": np.sqrt(mse),
            "nmse": t[..., SEE] / t[..., SX2],
            "rel_rmse": np.sqrt(mse) / scale,
            "plcc": plcc,
        }


def resample_weights(samples: int, seed: int | list[int], replicates: int = BOOTSTRAP_REPLICATES) -> np.ndarray:
    """(replicates, samples) counts: how often each sample is drawn in each bootstrap replicate."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, samples, size=(replicates, samples))
    flat = (np.arange(replicates)[:, None] * samples + idx).ravel()
    return np.bincount(flat, minlength=replicates * samples).reshape(replicates, samples).astype(np.float64)


def point(sums: OutputSums) -> dict[str, float]:
    """The figures over every sample (NaN where undefined: constant output, no error at all)."""
    f = _figures(sums.matrix().sum(axis=0))
    return {k: float(v) for k, v in f.items()}


def replicates(sums: OutputSums, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The figures of every bootstrap replicate (weights from `resample_weights`)."""
    return _figures(weights @ sums.matrix())


def jackknife(sums: OutputSums) -> dict[str, np.ndarray]:
    """The figures with each sample left out in turn (for the interval's acceleration)."""
    m = sums.matrix()
    return _figures(m.sum(axis=0)[None, :] - m)


def interval(values: np.ndarray, estimate: float | None = None, jack: np.ndarray | None = None) -> Interval | None:
    """The 95 % interval of finite bootstrap replicates. With the point `estimate` and the
    `jack`knife values it is the BCa interval (bias-corrected and accelerated: the drop's
    replicates are skewed, and plain percentiles cover the truth too rarely at small sample
    counts); without them, plain percentiles. None when too few replicates are finite: a figure
    undefined in most replicates has no interval."""
    v = values[np.isfinite(values)]
    if v.size < 0.9 * values.size or v.size == 0:
        return None
    a = (1.0 - CONFIDENCE) / 2.0
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
