"""The fidelity figures against values worked out without the code's formulas: small cases done by
hand (the exact fractions in the comments), Pearson's textbook two-pass formula written out in
plain Python with exactly rounded sums, and scipy's `pearsonr`. The figures are the gate's own
(`gate.measure`: one implementation, `metrics.compare` repeated it), and the reference method's
PLCC is `gate.estimate.reference_plcc`."""

import math

import numpy as np
import pytest
from scipy import stats

from quantgate.gate.estimate import linear, reference_plcc
from quantgate.gate.judge import budgets_of
from quantgate.gate.measure import measure
from quantgate.gate.settings import GateSettings
from quantgate.gate.sums import OutputSums


def compare(fp32: np.ndarray, int8: np.ndarray, *, reference: bool = False):
    """The gate's figures of one output when every one of 32 samples gives these two arrays."""
    n = 32

    def run_pair(chunk, first):
        return [[fp32] * len(chunk)], [[int8] * len(chunk)]

    m = measure(
        run_pair,
        ["y"],
        {"y"},
        iter([{}] * n),
        budgets_of(0.01),
        GateSettings(samples=n, reference_compat=reference),
        fixed=n,
        mode="fixed",
        keep_values=reference,
        batch=1,
    )
    return m.outputs[0]


def _pearson_two_pass(x, y) -> float:
    """r = sum (x - mx)(y - my) / sqrt(sum (x - mx)^2 sum (y - my)^2), means first (two passes)."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    mx, my = math.fsum(x) / len(x), math.fsum(y) / len(y)
    dx, dy = [v - mx for v in x], [v - my for v in y]
    sxy = math.fsum(a * b for a, b in zip(dx, dy, strict=True))
    return sxy / math.sqrt(math.fsum(a * a for a in dx) * math.fsum(b * b for b in dy))


@pytest.mark.parametrize(
    ("fp", "q", "r"),
    [
        # deviations (-1.5, -.5, .5, 1.5) and (-3, -1, 0, 4): 11 / sqrt(5 * 26)
        ([1, 2, 3, 4], [2, 4, 5, 9], 11 / math.sqrt(130)),
        # deviations (-1, 0, 1) and (-4/3, -1/3, 5/3): 3 / sqrt(2 * 14/3) = sqrt(27/28)
        ([0, 1, 2], [0, 1, 3], math.sqrt(27 / 28)),
        # a gain of 3 and an offset of 7: still r = 1
        ([0.5, -1, 2, 4], [8.5, 4, 13, 19], 1.0),
        # perfectly anti-correlated: r = -1, so the drop is 2, never 0
        ([1, 2, 3, 4], [-1, -2, -3, -4], -1.0),
        # deviations (-1, 1, -1, 1) and (1, -1, -1, 1): sum of products 0
        ([0, 2, 0, 2], [2, 0, 0, 2], 0.0),
    ],
)
def test_plcc_and_drop_equal_hand_worked_cases(fp, q, r):
    c = compare(np.array(fp, np.float32), np.array(q, np.float32))
    assert c.verdict == "ok"
    assert c.plcc == pytest.approx(r, abs=1e-12)
    assert c.drop == pytest.approx(1.0 - r, abs=1e-12)


def test_an_anti_correlated_int8_output_has_the_largest_drop_not_none():
    fp = np.linspace(-1, 1, 64, dtype=np.float32)
    c = compare(fp, -fp)
    assert c.drop == pytest.approx(2.0, abs=1e-12) and c.plcc == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [3, 11])
def test_plcc_matches_the_two_pass_formula_and_scipy(seed):
    rng = np.random.default_rng(seed)
    fp = rng.random(500, dtype=np.float32)
    q = (fp + rng.normal(0, 0.05, 500)).astype(np.float32)
    c = compare(fp, q)
    two_pass = _pearson_two_pass(fp, q)
    by_scipy = float(stats.pearsonr(fp.astype(np.float64), q.astype(np.float64)).statistic)
    assert two_pass == pytest.approx(by_scipy, rel=1e-12)  # the two references agree with each other
    assert c.plcc == pytest.approx(two_pass, rel=1e-9)
    assert c.drop == pytest.approx(1.0 - two_pass, rel=1e-6, abs=1e-12)
    assert c.verdict == "ok"
    assert c.max_abs_error == pytest.approx(max(abs(float(b) - float(a)) for a, b in zip(fp, q, strict=True)))


def test_error_figures_equal_a_hand_worked_case():
    # errors of ±1/4 on values of ±2 (all exact in binary): noise 4/16, signal 16, ratio 64
    fp = np.array([2, -2, 2, -2], np.float32)
    q = np.array([2.25, -2.25, 1.75, -1.75], np.float32)
    c = compare(fp, q)
    assert c.sqnr_db == pytest.approx(60 * math.log10(2), abs=1e-12)  # 10 log10(64)
    assert c.nmse == 1 / 64
    assert c.max_abs_error == 0.25
    assert c.max_abs_error_rel == 0.25 / 4  # the fp32 range is 4


def test_sqnr_sees_gain_drift_that_plcc_hides():
    fp = np.linspace(-1, 1, 1000, dtype=np.float32)
    scaled = fp * np.float32(1.5)  # perfectly correlated, 50 % gain error
    c = compare(fp, scaled)
    assert abs(c.drop) < 1e-9
    # noise/signal = 0.5^2 = 1/4: 10 log10(4) dB, a scale error PLCC cannot see
    assert c.sqnr_db == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert c.max_abs_error == pytest.approx(0.5)


# -- the gate's figures from sums (gate/estimate.py): rel_rmse and gain_offset by hand ----------


def _point(pairs) -> dict[str, float]:
    s = OutputSums()
    for x, y in pairs:
        s.add(np.array(x, np.float64), np.array(y, np.float64))
    return linear(s).point


def test_gain_offset_is_the_relative_gain_error_and_the_offset_over_the_rms():
    fp = [[1.0, -1.0], [3.0, -3.0]]  # RMS sqrt(5); mean 0, so gain and offset separate
    # a gain of 1.1 with no noise: the affine part of the error is 0.1 fp32, its RMS 0.1 of fp32's
    assert _point([(x, [1.1 * v for v in x]) for x in fp])["gain_offset"] == pytest.approx(0.1, rel=1e-9)
    # an offset of 0.5: the error's RMS is 0.5, against fp32's RMS sqrt(5)
    assert _point([(x, [v + 0.5 for v in x]) for x in fp])["gain_offset"] == pytest.approx(0.5 / math.sqrt(5), rel=1e-9)
    # pure noise uncorrelated with fp32 and of mean 0 has no affine part
    noise = [[1.0, 1.0], [-1.0, -1.0]]  # ±1 per sample: sum of e*x = 0 and sum of e = 0
    pairs = [(x, [v + e for v, e in zip(x, n, strict=True)]) for x, n in zip(fp, noise, strict=True)]
    assert _point(pairs)["gain_offset"] == pytest.approx(0.0, abs=1e-9)


def test_rel_rmse_is_the_rmse_over_the_fp32_spread_or_5_percent_of_its_rms():
    fp = [[1.0, -1.0], [3.0, -3.0]]  # population sd sqrt(5) (mean 0)
    err = [[0.5, -0.5], [-0.5, 0.5]]  # RMSE 0.5
    pairs = [(x, [v + e for v, e in zip(x, d, strict=True)]) for x, d in zip(fp, err, strict=True)]
    assert _point(pairs)["rel_rmse"] == pytest.approx(0.5 / math.sqrt(5), rel=1e-9)
    # a near-constant output: 100 ± 0.001, sd 0.001 < 5 % of its RMS (about 5), which is the scale
    flat = [[100.001, 99.999], [100.001, 99.999]]
    pairs = [(x, [v + 0.01 for v in x]) for x in flat]
    rms = math.sqrt((100.001**2 + 99.999**2) / 2)
    assert _point(pairs)["rel_rmse"] == pytest.approx(0.01 / (0.05 * rms), rel=1e-6)


def test_identical_outputs_have_infinite_sqnr_reported_as_none():
    fp = np.arange(10, dtype=np.float32)
    c = compare(fp, fp.copy())
    assert 0.0 <= c.drop < 1e-12 and c.sqnr_db is None and c.max_abs_error == 0.0


def test_constant_identical_output_passes_explicitly():
    fp = np.full(32, 0.25, np.float32)
    c = compare(fp, fp.copy())
    assert c.verdict == "ok" and c.drop == 0.0 and "constant" in c.note


def test_constant_outputs_that_differ_fail_with_reason():
    c = compare(np.full(8, 1.0, np.float32), np.full(8, 1.25, np.float32))
    assert c.verdict == "fail" and c.drop is None and "constant output differs" in c.note


def test_int8_collapsed_to_constant_fails():
    c = compare(np.linspace(0, 1, 16, dtype=np.float32), np.zeros(16, np.float32))
    assert c.verdict == "fail" and "collapsed" in c.note


def test_fp32_constant_but_int8_varies_fails():
    c = compare(np.zeros(16, np.float32), np.linspace(0, 1e-3, 16, dtype=np.float32))
    assert c.verdict == "fail" and "constant fp32 output" in c.note


def test_nan_never_passes():
    fp = np.linspace(0, 1, 16, dtype=np.float32)
    q = fp.copy()
    q[3] = np.nan
    assert compare(fp, q).verdict == "fail"
    fp2 = fp.copy()
    fp2[0] = np.inf
    assert compare(fp2, fp).verdict == "error"


def test_size_mismatch_is_an_error():
    assert compare(np.zeros(3), np.zeros(4)).verdict == "error"


def test_reference_plcc_of_hand_worked_cases_and_the_drop_the_reference_method_judges():
    # fp [1, 2, 3], q [1, 2, 4]: deviations [-1, 0, 1] and [-4/3, -1/3, 5/3]; r = 9 / sqrt(84)
    assert reference_plcc(np.array([1.0, 2, 3]), np.array([1.0, 2, 4])) == pytest.approx(9 / math.sqrt(84), abs=1e-15)
    assert reference_plcc(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0, abs=1e-15)
    assert math.isnan(reference_plcc(np.ones(4), np.arange(4.0)))  # a constant output has no PLCC
    o = compare(np.array([1.0, 2, 3], np.float32), np.array([1.0, 2, 4], np.float32), reference=True)
    assert o.verdict == "ok" and o.drop == pytest.approx(1 - 9 / math.sqrt(84), abs=1e-12)
