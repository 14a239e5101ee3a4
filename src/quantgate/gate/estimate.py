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
(gate/sums.py holds the rows.)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ..results import Interval
from .sums import SE, SEE, SX, SX2, SXX, SXY, SY, SYY, N, OutputSums

FIGURES = ("drop", "sqnr_db", "rmse", "rel_rmse", "gain_offset")
BOOTSTRAP_REPLICATES = 1000
REPLICATE_CHUNK = 25
CONFIDENCE = 0.95
TAIL_ALLOWANCE = 5.0
# rel_rmse's scale: the fp32 output's standard deviation, or this share of its RMS when the
# output barely varies (a near-constant score must not fail for an error nobody would see).
SCALE_RMS_SHARE = 0.05
# A variance below this share of the second moment is zero: rounding, not spread.
_ZERO_VARIANCE = 1e-12
_NORMAL = NormalDist()


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
