"""The per-sample sums (gate/sums.py) and the sampling steps (gate/steps.py), tested directly: which
sample is named worst, which samples each kept row holds however they arrive, and what a time cap
leaves. Expected values are worked by hand or with numpy on the raw values, never with the sums'
own formulas.
"""

from __future__ import annotations

import numpy as np
import pytest

from gate_support import fake_clock
from quantgate.gate import estimate, steps, sums
from quantgate.gate.settings import GateSettings


def _fold_now(s: sums.OutputSums) -> int:
    """Fold what `s` holds (reading the count does), so the next sample starts a new fold."""
    return s.samples


# -- the worst error and its sample ------------------------------------------------------------------
def test_a_tie_names_the_first_sample_with_the_largest_error():
    s = sums.OutputSums()
    for _ in range(3):  # three samples with the same error 0.5, each folded on its own
        s.add(np.zeros(3), np.array([0.0, 0.5, 0.0]))
        _fold_now(s)
    assert (s.worst_sample, s.max_abs_error) == (0, 0.5)
    s = sums.OutputSums()
    for _ in range(3):  # int8 equal to fp32: every error is 0, the first sample is named
        s.add(np.arange(4.0), np.arange(4.0))
        _fold_now(s)
    assert (s.worst_sample, s.max_abs_error) == (0, 0.0)
    s = sums.OutputSums()
    s.add_many(np.zeros((2, 2)), np.full((2, 2), 0.25))  # a tie inside one fold, then across folds
    s.add_many(np.zeros((2, 2)), np.full((2, 2), 0.25))
    assert s.worst_sample == 0


def test_a_larger_error_in_a_later_sample_of_large_values_is_found():
    # values near 1,000 (scaled by 2^-10 before any sum); errors 1 then 3 then 2, each sample
    # folded on its own: the worst is 3, on sample 1
    s = sums.OutputSums()
    fp = np.array([1000.0, 1001.0, 1002.0])
    for err in (1.0, 3.0, 2.0):
        s.add(fp, fp + np.array([0.0, err, 0.0]))
        _fold_now(s)
    assert (s.max_abs_error, s.worst_sample) == (3.0, 1)


def test_samples_folded_in_several_pieces_keep_their_index():
    # 8 samples of 2^16 values: FOLD_ELEMENTS (2^18) holds 4, so add_many folds them in two pieces
    size = sums.FOLD_ELEMENTS // 4
    fp = np.zeros((8, size))
    q = np.zeros((8, size))
    q[5, 7] = 0.25  # the worst error, in the second piece
    fp[6, 0] = np.nan  # fp32 not finite, in the second piece
    s = sums.OutputSums()
    s.add_many(fp, q, first=10)
    assert (s.worst_sample, s.max_abs_error, s.fp32_nonfinite) == (15, 0.25, 16)
    assert s.samples == 7


def test_one_sample_of_another_size_is_recorded_not_raised():
    s = sums.OutputSums()
    s.add_many(np.zeros((1, 3)), np.zeros((1, 4)), first=2)
    assert s.size_mismatch == (2, 3, 4) and s.samples == 0
    s = sums.OutputSums()
    s.add_many(np.zeros((1, 5)), np.zeros((1, 2)))
    assert s.size_mismatch == (0, 5, 2)


# -- which samples each row holds ----------------------------------------------------------------------
def _feed(s: sums.OutputSums, x: np.ndarray, pieces: list[int] | str) -> None:
    """Samples x (one value each; int8 = fp32 + 0.5) in pieces of the given sizes, or one at a time."""
    if pieces == "one by one":
        for v in x:
            s.add(np.array([v]), np.array([v + 0.5]))
            _fold_now(s)
        return
    at = 0
    for k in pieces:
        s.add_many(x[at : at + k, None], x[at : at + k, None] + 0.5)
        at += k
    assert at == len(x)


def _pieces(n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while sum(out) < n:
        out.append(min(int(rng.integers(1, 12)), n - sum(out)))
    return out


@pytest.mark.parametrize(("n", "block"), [(4101, 2), (8201, 4), (8195, 4)])
@pytest.mark.parametrize("how", ["whole", "big then rest", "small pieces", "one by one"])
def test_each_row_holds_its_block_of_consecutive_samples_however_they_arrive(n, block, how):
    # past 4,096 rows, neighbouring rows are summed: n samples are rows of `block` consecutive
    # samples (block the smallest power of two with n / block <= 4,096), the last row holding the
    # n % block left over. Sample i has the value i + 1, so a row's sum of squares names its samples.
    x = np.arange(1, n + 1, dtype=np.float64)
    pieces = {"whole": [n], "big then rest": [2500, 1601, n - 4101], "small pieces": _pieces(n, n)}.get(how, how)
    s = sums.OutputSums()
    _feed(s, x, [p for p in pieces if p] if isinstance(pieces, list) else pieces)
    m = s.matrix()
    full, rest = divmod(n, block)
    want_n = [block] * full + ([rest] if rest else [])
    want_sq = [float((x[r * block : (r + 1) * block] ** 2).sum()) for r in range(len(want_n))]
    assert s.block == block and s.samples == n and len(s._rows) <= 2 * sums.ROW_CAP
    assert m[:, sums.N].tolist() == want_n
    assert (m[:, sums.SX2] / s.scale**2).tolist() == want_sq  # powers of two and integers: exact
    assert m[:, sums.SE].tolist() == [0.5 * s.scale * k for k in want_n]


# -- scale --------------------------------------------------------------------------------------------------
def test_huge_values_after_tiny_first_ones_are_rescaled_not_overflowed():
    # the first sample near 1e-100 sets the scale (about 2^332); later ones near 1e100 would then be
    # about 2^664, past float64 once squared, unless the rows are rescaled
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 4))
    y = x + 0.05 * rng.standard_normal((40, 4))
    x[0] *= 1e-100
    y[0] *= 1e-100
    x[1:] *= 1e100
    y[1:] *= 1e100
    s = sums.OutputSums()
    s.add(x[0], y[0])
    _fold_now(s)
    for a, b in zip(x[1:], y[1:], strict=True):
        s.add(a, b)
    assert np.isfinite(s.matrix()).all()
    want = 1.0 - np.corrcoef(x.ravel(), y.ravel())[0, 1]  # numpy on the raw values
    assert estimate.linear(s).point["drop"] == pytest.approx(want, rel=1e-9)
    assert s.max_abs_error == pytest.approx(np.abs(y - x).max(), rel=1e-12)


# -- steps: the time cap --------------------------------------------------------------------------------------
def test_an_overrun_goes_back_to_a_one_sample_boundary(monkeypatch):
    # a pilot of one sample (min_samples 1) is a boundary like any other: when the next step runs
    # past twice the cap (10 s) at its fourth sample, the sums go back to that one sample
    clock = fake_clock(monkeypatch)
    rng = np.random.default_rng(0)

    def run_pair(chunk, first):
        clock[0] += 1.0 if first != 3 else 100.0  # sample 3: the machine slowed down
        xs = [rng.standard_normal(4) for _ in chunk]
        return [xs], [[v + 0.1 for v in xs]]

    feeds = iter(lambda: {"x": np.zeros(1)}, None)
    clock_ = steps.Clock(GateSettings(max_seconds=10.0, min_samples=1), True)
    run = steps.Stepper(run_pair, ["y"], feeds, clock_, keep_values=True)
    assert run.walk(1) == "" and run.done == 1
    assert run.walk(64) == "time cap"
    assert run.done == 1 and run.sums["y"].samples == 1
    assert [len(v) for v in run.kept["y"]] == [1, 1]  # the values kept go back with the sums
