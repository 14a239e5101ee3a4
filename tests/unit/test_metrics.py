import numpy as np

from quantgate.metrics import compare


def test_plcc_matches_numpy_corrcoef_and_drop_is_its_complement():
    rng = np.random.default_rng(3)
    fp = rng.random(500, dtype=np.float32)
    q = (fp + rng.normal(0, 0.05, 500)).astype(np.float32)
    c = compare(fp, q)
    ref = np.corrcoef(fp, q)[0, 1]
    assert c.plcc == ref
    assert c.drop == 1.0 - ref
    assert c.verdict == "ok"
    assert c.max_abs_error == float(np.max(np.abs(q.astype(np.float64) - fp)))


def test_sqnr_sees_gain_drift_that_plcc_hides():
    fp = np.linspace(-1, 1, 1000, dtype=np.float32)
    scaled = fp * np.float32(1.5)  # perfectly correlated, 50 % gain error
    c = compare(fp, scaled)
    assert abs(c.drop) < 1e-9
    # noise/signal = 0.25 -> 6 dB: a scale error PLCC cannot see
    assert abs(c.sqnr_db - 10 * np.log10(4.0)) < 1e-6
    assert c.max_abs_error > 0.49


def test_identical_outputs_have_infinite_sqnr_reported_as_none():
    fp = np.arange(10, dtype=np.float32)
    c = compare(fp, fp.copy())
    # corrcoef of identical arrays rounds to 1 - 1e-16; the reference gate reports the same
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
    assert c.verdict == "fail" and "fp32 output is constant" in c.note


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
