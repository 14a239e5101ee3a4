"""Every decision the gate makes, tested directly: each test fails when its rule is flipped
(bench/mutate.py plants those flips; docs/benchmarks.md#mutation-testing has the score).

The expected values are worked by hand (the arithmetic is in the comments), never with the
formula the code uses.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re

import numpy as np
import pytest

import modelzoo
from conftest import write_registry
from gate_support import fake_clock, gate_row, perturbed_sidecar
from quantgate.errors import UserError
from quantgate.gate import estimate, judge, measure, run_gate, steps, sums
from quantgate.gate.measure import Measured, Sampling
from quantgate.gate.settings import GateSettings
from quantgate.inputs import InputPlan, draw, stream
from quantgate.registry import DigestMismatch, load_registry, resolve, verify_digest
from quantgate.results import Interval, OutputFigures, Results, Row

DROP = judge.Budget("drop", 0.01, True, "budget")  # higher is worse
SQNR = judge.Budget("sqnr_db", 30.0, False, "quant_accuracy_budget_sqnr_db")  # lower is worse


# -- judge: the side of a budget ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ci", "side"),
    [
        ((0.002, 0.008), "within"),
        ((0.002, 0.01), "within"),  # touching the budget from below is within (drop <= budget)
        ((0.012, 0.02), "over"),
        ((0.01, 0.02), "straddles"),  # the low end on the budget: not shown over
        ((0.005, 0.015), "straddles"),
    ],
)
def test_a_drop_interval_is_within_below_its_budget_and_over_above_it(ci, side):
    assert DROP.side(Interval(*ci)) == side


@pytest.mark.parametrize(
    ("ci", "side"),
    [
        ((32.0, 40.0), "within"),  # SQNR above its floor is good
        ((30.0, 40.0), "within"),
        ((20.0, 28.0), "over"),  # wholly below the floor: over budget
        ((20.0, 30.0), "straddles"),
        ((25.0, 35.0), "straddles"),
    ],
)
def test_an_sqnr_interval_is_within_above_its_floor_and_over_below_it(ci, side):
    assert SQNR.side(Interval(*ci)) == side


def test_no_interval_decides_nothing():
    assert DROP.side(None) == SQNR.side(None) == "straddles"


def test_a_point_is_within_on_the_budget_and_not_past_it():
    assert DROP.within(0.01) and DROP.within(0.0) and not DROP.within(0.0101)
    assert SQNR.within(30.0) and SQNR.within(45.0) and not SQNR.within(29.9)
    assert "exceeds budget 0.01" in DROP.describe(0.02)
    assert "is below quant_accuracy_budget_sqnr_db 30 dB" in SQNR.describe(12.0)
    assert "within budget 0.01" in DROP.describe(0.005)


def test_the_sanity_floor_stands_in_only_when_no_other_budget_is_set():
    def shape(bs):
        return [(b.figure, b.threshold, b.higher_is_worse) for b in bs]

    assert shape(judge.budgets_of(0.01)) == [("drop", 0.01, True), ("gain_offset", 0.05, True)]
    assert shape(judge.budgets_of(0.02, sqnr_db=25.0)) == [("drop", 0.02, True), ("sqnr_db", 25.0, False)]
    assert shape(judge.budgets_of(0.02, rmse=0.5)) == [("drop", 0.02, True), ("rmse", 0.5, True)]


# -- judge: the rank of rows and the verdict -----------------------------------------------------------
def _fig(name="y", verdict="ok", drop=0.004, ci=(0.002, 0.006), note=None, **kw) -> OutputFigures:
    if verdict != "ok":
        return OutputFigures(name=name, judged=True, verdict=verdict, note=note or f"{verdict} here")
    return OutputFigures(
        name=name,
        judged=True,
        verdict="ok",
        note=note,
        plcc=1.0 - drop,
        drop=drop,
        drop_ci=Interval(*ci),
        gain_offset=kw.pop("gain_offset", 0.001),
        gain_offset_ci=Interval(0.0, 0.002),
        **kw,
    )


def _measured(*outputs, decided=True, samples=64, stopped="decided", undecided=None) -> Measured:
    s = Sampling(mode="adaptive", samples=samples, stopped=stopped)
    return Measured(list(outputs), s, decided, undecided)


def test_an_error_ranks_before_a_fail_before_the_largest_drop():
    ok_small, ok_big = _fig("a", drop=0.001), _fig("b", drop=0.009)
    fail, error = _fig("c", "fail"), _fig("d", "error")
    judged = {"a", "b", "c", "d"}
    for order in itertools.permutations([ok_small, ok_big, fail, error]):
        assert judge.worst_output(list(order), judged).name == "d"
    for order in itertools.permutations([ok_small, ok_big, fail]):
        assert judge.worst_output(list(order), judged).name == "c"
    assert judge.worst_output([ok_small, ok_big], judged).name == "b"
    assert judge.worst_output([ok_big, ok_small], {"a"}).name == "a"  # only judged outputs count


def test_an_error_output_makes_an_error_row_even_beside_a_failing_one():
    budgets = judge.budgets_of(0.01)
    row = judge.verdict(_measured(_fig("a", "fail"), _fig("b", "error")), {"a", "b"}, budgets, 0.01)
    assert row.status == "error" and "output 'b'" in row.reason
    row = judge.verdict(_measured(_fig("a", "fail"), _fig("b")), {"a", "b"}, budgets, 0.01)
    assert row.status == "fail" and "output 'a'" in row.reason


@pytest.mark.parametrize("verdict", ["fail", "error"])
def test_an_output_that_fails_on_its_own_is_not_a_marginal_row(verdict):
    # an output's own failure (NaN in int8, sizes that differ) is decided whatever the budgets'
    # intervals said: not marginal, so no policy applies (and a fail row gets its `why`)
    m = _measured(_fig("y", verdict), decided=False, stopped="sample cap", undecided="it straddles")
    for policy in ("fail", "warn", "pass"):
        row = judge.verdict(m, {"y"}, judge.budgets_of(0.01), 0.01, on_marginal=policy)
        assert (row.status, row.marginal, row.on_marginal) == (verdict, False, None)


def _row(status: str) -> Row:
    return Row(id=status, mode="dynamic", status=status)


@pytest.mark.parametrize(
    ("statuses", "verdict", "code"),
    [
        (["pass", "fail", "error"], "error", 2),
        (["error", "fail"], "error", 2),
        (["pass", "fail", "skipped"], "fail", 1),
        (["pass", "skipped"], "pass", 0),
        (["skipped"], "nothing", 3),
        ([], "nothing", 3),
    ],
)
def test_the_run_takes_the_worst_row_error_then_fail_then_pass(statuses, verdict, code):
    res = Results(models=tuple(_row(s) for s in statuses), settings={}, run_provenance={})
    assert (res.verdict, res.exit_code) == (verdict, code)


def test_a_decided_row_is_not_marginal_and_its_headroom_is_budget_minus_drop():
    row = judge.verdict(_measured(_fig(drop=0.004)), {"y"}, judge.budgets_of(0.01), 0.01)
    assert row.status == "pass" and row.marginal is False
    assert row.headroom == pytest.approx(0.006)  # 0.01 - 0.004
    row = judge.verdict(_measured(_fig(drop=0.03, ci=(0.02, 0.04))), {"y"}, judge.budgets_of(0.01), 0.01)
    assert row.status == "fail" and row.marginal is False
    assert row.headroom == pytest.approx(-0.02)  # 0.01 - 0.03: negative when over
    assert "drop 0.03 exceeds budget 0.01" in row.reason and "on output" not in row.reason


@pytest.mark.parametrize(("policy", "status"), [("fail", "fail"), ("warn", "pass"), ("pass", "pass")])
def test_an_undecided_row_is_marginal_and_its_policy_sets_the_status(policy, status):
    m = _measured(_fig(drop=0.008, ci=(0.004, 0.012)), decided=False, stopped="sample cap", undecided="it straddles")
    row = judge.verdict(m, {"y"}, judge.budgets_of(0.01), 0.01, on_marginal=policy)
    assert row.marginal is True and row.on_marginal == policy
    assert row.status == status
    assert "marginal at 64 samples: it straddles" in row.reason


@pytest.mark.parametrize("policy", ["fail", "warn", "pass"])
def test_an_undecided_row_whose_point_is_over_fails_whatever_the_policy(policy):
    m = _measured(_fig(drop=0.012, ci=(0.008, 0.016)), decided=False, stopped="sample cap", undecided="x")
    row = judge.verdict(m, {"y"}, judge.budgets_of(0.01), 0.01, on_marginal=policy)
    assert row.status == "fail" and row.marginal is True


def test_every_judged_output_and_every_budget_is_checked_not_only_the_worst_drop():
    # output 'a' has the larger drop (the headline) but 'b' breaks the SQNR floor
    a = _fig("a", drop=0.006, sqnr_db=40.0)
    b = _fig("b", drop=0.002, sqnr_db=20.0)
    row = judge.verdict(_measured(a, b), {"a", "b"}, judge.budgets_of(0.01, sqnr_db=30.0), 0.01)
    assert row.judged_output == "a" and row.status == "fail"
    assert "SQNR 20 dB is below" in row.reason and "on output 'b'" in row.reason
    # an unjudged output breaking it changes nothing
    row = judge.verdict(_measured(a, b), {"a"}, judge.budgets_of(0.01, sqnr_db=30.0), 0.01)
    assert row.status == "pass"


def test_the_sanity_floor_fails_a_gain_error_the_drop_cannot_see():
    fig = _fig(drop=0.0001, gain_offset=0.1)  # a gain of 1.1: 0.1 of the output's RMS, over 0.05
    row = judge.verdict(_measured(fig), {"y"}, judge.budgets_of(0.01), 0.01)
    assert row.status == "fail" and "sanity floor 0.05" in row.reason


# -- the sign of the drop ---------------------------------------------------------------------------
def compare(fp32, int8):
    """The reference method's figures of one output (`measure` under reference_compat, whose PLCC
    is `estimate.reference_plcc`; `metrics.compare` is gone): 32 samples of these two arrays."""
    n = 32

    def run_pair(chunk, first):
        return [[fp32] * len(chunk)], [[int8] * len(chunk)]

    settings = GateSettings(samples=n, reference_compat=True)
    budgets = judge.budgets_of(0.01)
    m = measure.measure(
        run_pair, ["y"], {"y"}, iter([{}] * n), budgets, settings, fixed=n, mode="fixed", keep_values=True, batch=1
    )
    return m.outputs[0]


def test_an_anti_correlated_int8_output_has_drop_two_and_fails():
    fp = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    c = compare(fp, fp[::-1].copy())  # 4 3 2 1: PLCC -1 exactly
    assert c.plcc == pytest.approx(-1.0) and c.drop == pytest.approx(2.0)
    # by hand: deviations (-1.5, -0.5, 0.5, 1.5) and (-1.5, 0.5, -0.5, 1.5): sum xy 4, sum xx 5, r 0.8
    c = compare(fp, np.array([1.0, 3.0, 2.0, 4.0], dtype=np.float32))
    assert c.plcc == pytest.approx(0.8) and c.drop == pytest.approx(0.2)
    c = compare(fp, np.array([4.0, 2.0, 3.0, 1.0], dtype=np.float32))  # r = -0.8 by the same sums
    assert c.plcc == pytest.approx(-0.8) and c.drop == pytest.approx(1.8)


def test_the_gates_estimator_gives_an_anti_correlated_output_drop_two():
    s = sums.OutputSums()
    rng = np.random.default_rng(1)
    for _ in range(40):
        x = rng.standard_normal(6)
        s.add(x, -x)
    lin = estimate.linear(s)
    assert lin.point["drop"] == pytest.approx(2.0) and lin.point["plcc"] == pytest.approx(-1.0)
    # and 0.8 correlation, per sample pooled, as worked above: drop 0.2
    s = sums.OutputSums()
    for _ in range(3):
        s.add(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert estimate.linear(s).point["drop"] == pytest.approx(0.2)


# -- measure: when sampling stops -------------------------------------------------------------------
def _feeds(seed=0, size=8):
    rng = np.random.default_rng(seed)
    while True:
        yield {"x": rng.standard_normal(size), "e": rng.standard_normal(size)}


def _pair(noise: float, sign: float = 1.0, clock=None):
    def run_pair(chunk, first):
        if clock is not None:
            clock[0] += len(chunk)  # one second per sample
        return [[f["x"] for f in chunk]], [[sign * f["x"] + noise * f["e"] for f in chunk]]

    return run_pair


def _measure(run_pair, settings=None, feeds=None, **kw) -> Measured:
    kw.setdefault("fixed", None)
    kw.setdefault("mode", "adaptive")
    return measure.measure(
        run_pair,
        ["y"],
        {"y"},
        feeds if feeds is not None else _feeds(),
        judge.budgets_of(0.01),
        settings or GateSettings(),
        **kw,
    )


def test_a_clear_fail_stops_at_the_first_look_of_32():
    m = _measure(_pair(0.0, sign=-1.0))
    assert (m.sampling.samples, m.sampling.stopped, m.decided) == (32, "decided", True)
    assert m.outputs[0].drop == pytest.approx(2.0)


def test_a_pinned_count_is_measured_exactly_and_below_32_decides_nothing():
    m = _measure(_pair(0.0, sign=-1.0), fixed=64, mode="fixed")
    assert (m.sampling.samples, m.sampling.stopped, m.decided) == (64, "fixed", True)
    m = _measure(_pair(0.0, sign=-1.0), fixed=16, mode="fixed")
    assert (m.sampling.samples, m.decided) == (16, False)
    assert "fewer than the 32 samples a verdict needs" in m.undecided


def test_an_eval_set_is_judged_on_all_its_rows_then_stops():
    rows = list(itertools.islice(_feeds(), 40))
    m = _measure(_pair(0.0, sign=-1.0), feeds=iter(rows), available=40, mode="eval set")
    assert (m.sampling.samples, m.sampling.stopped) == (40, "eval set")


def test_a_figure_on_its_budget_samples_to_the_cap_and_stays_undecided():
    # noise 0.1414: true drop 1 - 1/sqrt(1 + 0.02) = 0.00985, at the budget of 0.01
    m = _measure(_pair(0.1414), GateSettings(max_samples=128))
    assert (m.sampling.samples, m.sampling.stopped, m.decided) == (128, "sample cap", False)
    assert m.outputs[0].samples == 128
    assert "straddles 0.01" in m.undecided


def test_a_clear_pass_waits_for_the_pass_floor():
    # a clear pass (drop 0.0000125) with 16 values a sample: the floor of a 16-element sample is
    # 2,048 samples (2 * 2048 * 16 = 65,536 elements, far under 2^22), so no verdict at 64
    m = _measure(_pair(0.005), GateSettings(max_samples=64))
    assert (m.sampling.samples, m.decided) == (64, False)
    assert "a pass of a model this size needs 2,048 samples" in m.undecided


def test_the_time_cap_stops_before_a_step_that_would_not_fit(monkeypatch):
    clock = fake_clock(monkeypatch)

    # 1 s a sample, a 40 s cap: the pilot's 32 samples take 32 s; 32 more would not fit
    m = _measure(_pair(0.1414, clock=clock), GateSettings(max_seconds=40.0))
    assert (m.sampling.samples, m.sampling.stopped, m.sampling.time_capped) == (32, "time cap", True)
    clock[0] = 0.0  # a pinned count is never time-capped
    m = _measure(_pair(0.1414, clock=clock), GateSettings(max_seconds=40.0), fixed=64, mode="fixed")
    assert (m.sampling.samples, m.sampling.stopped) == (64, "fixed")


def test_stops_a_fail_at_once_and_a_pass_only_when_precise():
    assert measure.stops("over", precise=False) and measure.stops("over", precise=True)
    assert measure.stops("within", precise=True) and not measure.stops("within", precise=False)
    assert not measure.stops("", precise=True)


def _decide(*figs, n=64, floors=(32, 32), budget=0.01, **kw):
    return measure.decide(list(figs), {f.name for f in figs}, judge.budgets_of(budget), 0.95, n, floors, **kw)


def test_decide_needs_every_budget_within_and_one_over_is_enough():
    within = _fig("a", drop=0.004, ci=(0.0035, 0.0045))
    assert _decide(within)[0] == "within"
    assert _decide(within, _fig("b", drop=0.03, ci=(0.02, 0.04)))[0] == "over"
    assert _decide(within, _fig("b", drop=0.009, ci=(0.006, 0.012)))[0] == ""
    assert _decide(within, n=31)[0] == ""  # under the floor of any verdict
    assert _decide(within, n=63, floors=(32, 64))[0] == ""  # under the pass floor
    assert _decide(within, n=64, floors=(32, 64))[0] == "within"
    assert _decide(_fig("b", drop=0.03, ci=(0.02, 0.04)), n=40, floors=(32, 2048))[0] == "over"  # fails early


def test_decide_calls_a_drop_precise_when_its_95_percent_half_width_is_a_tenth_of_the_budget():
    # at level 0.95 the widening is 1: half-width 0.0005 is 0.05 of 0.01 (precise), 0.0015 is 0.15
    assert _decide(_fig(drop=0.004, ci=(0.0035, 0.0045)))[1] is True
    assert _decide(_fig(drop=0.004, ci=(0.0025, 0.0055)))[1] is False


def test_a_constant_output_decides_only_when_settled():
    same = _fig(drop=0.0, ci=(0.0, 0.0), note=measure.CONSTANT_EXACT)
    assert _decide(same)[0] == "" and _decide(same)[3] == "output 'y' is constant so far"
    assert _decide(same, settled=True)[0] == "within"
    assert _decide(_fig("e", "error"))[2] is True  # an error is final


@pytest.mark.parametrize(
    ("elements", "floor"),
    [
        (2, 2048),  # 2 * 2048 * 2 elements is far under 2^22; the floor's own cap stops it
        (65536, 64),  # 128 * 65536 = 2^23 > 2^22, 64 * 65536 = 2^22 fits
        (65537, 32),
        (1 << 21, 32),
    ],
)
def test_the_pass_floor_puts_2_to_the_22_elements_through_the_model(elements, floor):
    assert measure.pass_floor(elements, 32) == floor


def test_looks_double_from_the_first_to_the_cap():
    assert measure._doubling(32, 256) == [32, 64, 128, 256]
    assert measure._doubling(32, 100) == [32, 64, 100]
    assert steps.boundaries(20, 100) == [32, 64, 100]
    assert measure.plan_looks([None], judge.budgets_of(0.01), 32, 4096) == [4096]


# -- the seed's reach: draws and bootstrap -----------------------------------------------------------------
def test_the_seed_changes_the_bootstrap_of_the_same_samples():
    rows = list(itertools.islice(_feeds(), 64))
    a = _measure(_pair(0.1), GateSettings(seed=0), feeds=iter(rows), fixed=64, mode="fixed")
    b = _measure(_pair(0.1), GateSettings(seed=0), feeds=iter(rows), fixed=64, mode="fixed")
    c = _measure(_pair(0.1), GateSettings(seed=7), feeds=iter(rows), fixed=64, mode="fixed")
    assert a.outputs[0].drop == c.outputs[0].drop  # the same samples
    assert a.outputs[0].drop_ci == b.outputs[0].drop_ci
    assert a.outputs[0].drop_ci != c.outputs[0].drop_ci  # another bootstrap
    assert a.sampling.bootstrap_seed[0] == 0 and c.sampling.bootstrap_seed[0] == 7


def test_the_seed_changes_the_draws_and_the_same_seed_repeats_them():
    plans = [InputPlan("x", "float32", (3,), -1.0, 1.0, "spec range")]
    a, b, c = draw(plans, 5, 0), draw(plans, 5, 0), draw(plans, 5, 1)
    assert all(np.array_equal(p["x"], q["x"]) for p, q in zip(a, b, strict=True))
    assert not any(np.array_equal(p["x"], q["x"]) for p, q in zip(a, c, strict=True))
    assert all(((f["x"] >= -1.0) & (f["x"] < 1.0)).all() for f in a + c)
    assert any((f["x"] < 0).any() for f in a)  # scaled to the range, not left in [0, 1)
    first = next(stream(plans, 0))
    assert np.array_equal(first["x"], a[0]["x"])  # the first N are the same whatever N


def test_the_gate_passes_its_seed_to_the_bootstrap(repo):
    fp32 = modelzoo.tiny(repo)
    perturbed_sidecar(fp32, scale=0.05)
    modelzoo.write_npz(repo / "eval.npz", x=np.random.default_rng(3).standard_normal((64, 4)).astype(np.float32))
    fields = {"quant_eval_set": "eval.npz", "quant_accuracy_budget_plcc": 0.5}
    write = write_registry(repo / "registry.json", [{"id": "t", "onnx": fp32.name, "quant_mode": "dynamic", **fields}])
    a = run_gate(write, seed=0).to_json()["models"][0]
    c = run_gate(write, seed=5).to_json()["models"][0]
    assert a["status"] == "pass", a["reason"]
    assert a["drop"] == c["drop"]  # the same eval rows
    assert a["drop_ci"] != c["drop_ci"]
    assert a["sampling"]["bootstrap"]["seed"][0] == 0 and c["sampling"]["bootstrap"]["seed"][0] == 5


# -- registry: a refused entry is never measured; digests ---------------------------------------------------
@pytest.mark.parametrize("budget", [1.5, -0.1, "0.01"])
def test_a_schema_invalid_budget_is_an_error_row_and_nothing_is_measured(repo, budget):
    fp32 = modelzoo.tiny(repo)
    perturbed_sidecar(fp32)
    row = gate_row(repo, fp32, "t", quant_accuracy_budget_plcc=budget)
    assert row["status"] == "error" and "quant_accuracy_budget_plcc" in row["reason"]
    assert row.get("drop") is None and not row.get("samples") and not row.get("outputs")
    assert "sampling" not in row or not row["sampling"]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_verify_digest_accepts_the_files_own_and_refuses_another(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"model bytes")
    verify_digest(f, None, field_name="sha256", registry=tmp_path / "r.json")  # no digest recorded
    verify_digest(f, _sha(f), field_name="sha256", registry=tmp_path / "r.json")
    with pytest.raises(DigestMismatch, match=r"int8_sha256 of m\.onnx does not match"):
        verify_digest(f, "0" * 64, field_name="int8_sha256", registry=tmp_path / "r.json")


@pytest.mark.parametrize("mode", ["fp32", "dynamic"])
def test_resolve_checks_the_digest_of_the_file_it_returns(repo, mode):
    (repo / "m.onnx").write_bytes(b"fp32 bytes")
    (repo / "m.int8.onnx").write_bytes(b"int8 bytes")
    target = repo / ("m.onnx" if mode == "fp32" else "m.int8.onnx")
    field = "sha256" if mode == "fp32" else "int8_sha256"
    entry = {"id": "m", "onnx": "m.onnx", "quant_mode": mode, field: _sha(target)}
    reg = write_registry(repo / "registry.json", [entry])
    assert resolve("m", reg) == target.resolve()
    reg = write_registry(repo / "registry.json", [{**entry, field: "f" * 64}])
    with pytest.raises(DigestMismatch, match=re.escape(f"{field} of {target.name} does not match")):
        resolve("m", reg)
    # the other file's digest is not this one's business
    other = "int8_sha256" if mode == "fp32" else "sha256"
    reg = write_registry(repo / "registry.json", [{**entry, other: "f" * 64}])
    assert resolve("m", reg) == target.resolve()


def test_resolve_refuses_a_missing_sidecar_and_an_invalid_entry(repo):
    (repo / "m.onnx").write_bytes(b"fp32 bytes")
    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic"}])
    with pytest.raises(UserError, match="which does not exist"):
        resolve("m", reg)
    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": "m.onnx", "quant_accuracy_budget_plcc": 2}])
    with pytest.raises(UserError, match="quant_accuracy_budget_plcc"):
        resolve("m", reg)


def test_a_registry_entry_carries_its_budgets_and_digests(repo):
    entry = {
        "id": "m",
        "onnx": "m.onnx",
        "quant_accuracy_budget_plcc": 0.02,
        "quant_accuracy_budget_sqnr_db": 25,
        "quant_accuracy_budget_rmse": 0.3,
        "quant_gate_samples": 64,
        "sha256": "a" * 64,
        "int8_sha256": "b" * 64,
    }
    reg = load_registry(write_registry(repo / "registry.json", [entry, {"id": "n", "onnx": "n.onnx"}]))
    e, n = reg.get("m"), reg.get("n")
    assert (e.budget, e.budget_sqnr_db, e.budget_rmse, e.gate_samples) == (0.02, 25.0, 0.3, 64)
    assert (e.sha256, e.int8_sha256) == ("a" * 64, "b" * 64)
    assert (n.budget, n.mode, n.budget_sqnr_db, n.gate_samples, n.sha256) == (0.01, "fp32", None, None, None)
    assert not e.problems and not n.problems
    dup = load_registry(write_registry(repo / "registry.json", [entry, entry]))
    assert "duplicate id 'm'" in str(dup.entries[1].problems[0]) and not dup.entries[0].problems
    assert json.loads((repo / "registry.json").read_text())["models"][0]["id"] == "m"


def test_a_step_past_twice_the_cap_goes_back_to_the_last_boundary(monkeypatch):
    clock = fake_clock(monkeypatch)

    def slowing(chunk, first):
        clock[0] += len(chunk) * (0.1 if first < 32 else 3.0)  # the machine slows down after 32
        return _pair(0.1414)(chunk, first)

    # the pilot: 32 samples in 3.2 s, so 32 more are predicted to fit a 40 s cap; they take 96 s,
    # past twice the cap (80 s) at the 26th: abandoned, the 32 samples stand
    m = _measure(slowing, GateSettings(max_seconds=40.0))
    assert (m.sampling.samples, m.sampling.stopped) == (32, "time cap")
    assert m.outputs[0].samples == 32


def _one_output(fp, q, fixed=32) -> OutputFigures:
    def run_pair(chunk, first):
        return [[fp(first + j) for j in range(len(chunk))]], [[q(first + j) for j in range(len(chunk))]]

    return _measure(run_pair, fixed=fixed, mode="fixed").outputs[0]


def test_a_broken_output_gets_its_own_verdict_and_reason():
    x = np.arange(4.0)
    o = _one_output(lambda i: x + i, lambda i: np.arange(3.0) if i == 5 else x + i)
    assert (o.verdict, o.note) == ("error", "int8 output has 3 values, fp32 has 4 (sample 5)")
    o = _one_output(lambda i: x * np.nan if i == 7 else x + i, lambda i: x + i)
    assert o.verdict == "error" and o.note.startswith("fp32 output has NaN or inf on gate input 7")
    o = _one_output(lambda i: x + i, lambda i: x * np.inf if i == 9 else x + i)
    assert (o.verdict, o.note) == ("fail", "int8 output has NaN or inf where fp32 is finite (sample 9)")
    o = _one_output(lambda i: np.zeros(0), lambda i: np.zeros(0))
    assert (o.verdict, o.note) == ("error", "output is empty")


def test_no_sample_at_all_is_said():
    m = _measure(_pair(0.1), feeds=iter([]), available=0, mode="eval set")
    assert (m.outputs, m.decided, m.undecided) == ([], False, "no sample was measured")
    assert m.sampling.samples == 0 and m.sampling.steps == []


def test_the_samples_a_figure_needs_for_its_interval_to_clear_the_budget():
    # half-width 2.5 se sqrt(n/m) at m samples must fit in the margin: m = n (2.5 se / margin)^2
    # a pass of the drop: margin min(0.01 - 0.005, 0.1 * 0.01) = 0.001; m = 32 (0.0025 / 0.001)^2 = 200
    assert measure._needed(DROP, 0.005, 0.001, (0.0, 0.0), 32) == pytest.approx(200.0)
    # over the budget: margin 0.01; m = 32 (0.0025 / 0.01)^2 = 2
    assert measure._needed(DROP, 0.02, 0.001, (0.0, 0.0), 32) == pytest.approx(2.0)
    # SQNR 33 dB over a 30 dB floor, se 1.5: m = 32 (3.75 / 3)^2 = 50
    assert measure._needed(SQNR, 33.0, 1.5, (0.0, 0.0), 32) == pytest.approx(50.0)
    # a tail allowance toward the budget (up for a drop within it, down for an SQNR above its
    # floor) adds 5 a (n/m): solve 0.0025 u + 0.0005 u^2 = 0.001, u = 0.372281, m = 32 / u^2 = 230.9
    assert measure._needed(DROP, 0.005, 0.001, (0.0, 1e-4), 32) == pytest.approx(230.9, rel=1e-3)
    assert measure._needed(DROP, 0.005, 0.001, (1e-4, 0.0), 32) == pytest.approx(200.0)
    assert measure._needed(SQNR, 33.0, 1.5, (0.0, 1.0), 32) == pytest.approx(50.0)
    assert measure._needed(SQNR, 33.0, 1.5, (1.0, 0.0), 32) > 50.0
    for bad in ((math.nan, 0.001, (0.0, 0.0)), (0.005, math.inf, (0.0, 0.0)), (0.005, 0.001, (math.inf, 0.0))):
        assert measure._needed(DROP, bad[0], bad[1], bad[2], 32) == math.inf


def test_the_marginal_reason_says_what_would_settle_it():
    budgets = judge.budgets_of(0.01)
    fig = _fig(drop=0.008, ci=(0.004, 0.012))

    def reason(sampling):
        return judge.verdict(Measured([fig], sampling, False, "it straddles"), {"y"}, budgets, 0.01).reason

    assert "all 40 rows of the eval set (--max-samples)" in reason(Sampling("eval set", samples=32, available=40))
    assert "a larger eval set (quant_eval_set)" in reason(Sampling("eval set", samples=40, available=40))
    capped = reason(Sampling("adaptive", samples=64, stopped="time cap", seconds=30.0))
    assert "time-capped (30 s)" in capped and "quant_gate_samples (e.g. 128)" in capped
    assert "more samples (--max-samples" in reason(Sampling("adaptive", samples=64, stopped="sample cap"))
    assert "a larger pinned count (--samples" in reason(Sampling("fixed", samples=64, stopped="fixed"))


def test_an_infinite_sqnr_is_within_any_floor():
    exact = _fig(drop=0.0, ci=(0.0, 0.0), sqnr_db=None)  # int8 equals fp32: no SQNR to judge
    row = judge.verdict(_measured(exact), {"y"}, judge.budgets_of(0.01, sqnr_db=30.0), 0.01)
    assert row.status == "pass", row.reason


def test_an_eval_set_plans_one_look_at_its_size_and_says_so():
    rows = list(itertools.islice(_feeds(), 40))
    m = _measure(_pair(0.0, sign=-1.0), feeds=iter(rows), available=40, mode="eval set")
    assert m.sampling.planned == [40] and m.sampling.steps == [40]
    assert m.sampling.record().to_json()["available"] == 40
    assert "available" not in _measure(_pair(0.0, sign=-1.0)).sampling.record().to_json()


def test_the_reference_method_is_numpy_corrcoef_to_the_last_digit():
    rows = list(itertools.islice(_feeds(), 64))
    m = _measure(_pair(0.1), feeds=iter(rows), fixed=64, mode="fixed", keep_values=True)
    x = np.concatenate([r["x"] for r in rows])
    y = np.concatenate([r["x"] + 0.1 * r["e"] for r in rows])
    assert m.outputs[0].drop == 1.0 - np.corrcoef(x, y)[0, 1]  # the definition of the method


def test_an_eval_set_cut_short_is_held_to_the_pass_floor():
    rows = list(itertools.islice(_feeds(), 100))
    m = _measure(_pair(0.005), GateSettings(max_samples=64), feeds=iter(rows), available=100, mode="eval set")
    assert (m.sampling.samples, m.sampling.stopped, m.decided) == (64, "sample cap", False)
    assert "needs 2,048 samples" in m.undecided
    # the whole set is all there is to see: decided on its 100 rows
    m = _measure(_pair(0.005), feeds=iter(rows), available=100, mode="eval set")
    assert (m.sampling.samples, m.sampling.stopped, m.decided) == (100, "eval set", True)


def test_a_broken_output_stops_sampling_at_once():
    x = np.arange(4.0)

    def run_pair(chunk, first):
        q = [x * np.nan if first + j == 3 else x for j in range(len(chunk))]
        return [[x for _ in chunk]], [q]

    m = _measure(run_pair)
    assert (m.sampling.samples, m.sampling.stopped) == (32, "verdict")
    assert m.outputs[0].verdict == "fail"


def test_only_a_pinned_count_carries_the_pass_floor_note():
    m = _measure(_pair(0.005), GateSettings(max_samples=64))
    assert m.note is None
    m = _measure(_pair(0.005), fixed=64, mode="fixed")
    assert m.decided and m.note.startswith(
        "pinned at 64 samples, a pass can miss a failure on fewer than 1 input in 22"
    )


def test_an_unjudged_output_does_not_plan_the_looks():
    def run_pair(chunk, first):
        fp, q = _pair(0.0, sign=-1.0)(chunk, first)
        return [fp[0], [np.ones(3) for _ in chunk]], [q[0], [np.ones(3) for _ in chunk]]

    m = measure.measure(
        run_pair, ["y", "c"], {"y"}, _feeds(), judge.budgets_of(0.01), GateSettings(), fixed=None, mode="adaptive"
    )
    assert (m.sampling.samples, m.sampling.stopped) == (32, "decided")
    assert [(o.name, o.judged) for o in m.outputs] == [("y", True), ("c", False)]


def test_boundaries_are_the_powers_of_two_past_what_is_done():
    assert steps.boundaries(0, 64) == [16, 32, 64]
    assert steps.boundaries(32, 64) == [64]
    assert steps.boundaries(0, 40) == [16, 32, 40]


def test_a_step_that_just_fits_the_time_cap_is_taken(monkeypatch):
    clock = fake_clock(monkeypatch)

    # 1 s a sample, a 64 s cap: 32 + 32 samples end on the cap exactly (fits), 64 more would not
    m = _measure(_pair(0.1414, clock=clock), GateSettings(max_seconds=64.0))
    assert (m.sampling.samples, m.sampling.stopped) == (64, "time cap")


def test_an_unjudged_output_decides_nothing():
    within = _fig("a", drop=0.004, ci=(0.0035, 0.0045))
    over = _fig("b", drop=0.03, ci=(0.02, 0.04))
    decision = measure.decide([within, over], {"a"}, judge.budgets_of(0.01), 0.95, 64, (32, 32))
    assert decision[0] == "within"


def test_a_constant_output_that_differs_says_both_values():
    o = _one_output(lambda i: np.ones(3), lambda i: np.full(3, 2.0))
    assert (o.verdict, o.note) == ("fail", "constant output differs: fp32 1, int8 2")
    o = _one_output(lambda i: np.ones(3), lambda i: np.ones(3) + (i == 4))
    assert o.verdict == "fail" and o.note.startswith(
        "constant fp32 output (1) but int8 varies (worst error 1 on sample 4"
    )


def test_the_bootstrap_seed_is_the_one_the_coverage_simulation_measured():
    from quantgate.gate import simulate

    m = _measure(_pair(0.0, sign=-1.0), GateSettings(seed=0))
    assert m.sampling.bootstrap_seed == simulate.BOOT_SEED


def test_feeds_that_run_out_stop_the_measurement_where_they_end():
    rows = list(itertools.islice(_feeds(), 40))
    m = _measure(_pair(0.0, sign=-1.0), feeds=iter(rows), fixed=64, mode="fixed")
    assert (m.sampling.samples, m.sampling.stopped) == (40, "feeds ran out")
    m = _measure(_pair(0.0, sign=-1.0), feeds=iter(rows[:38]), fixed=64, mode="fixed", batch=4)  # mid-batch
    assert (m.sampling.samples, m.sampling.stopped) == (38, "feeds ran out")


def test_a_count_pinned_at_the_pass_floor_carries_no_note():
    # 21,845 values of x, e and y: 65,535 elements a sample, so the pass floor is 64 (64 * 65,535 <= 2^22)
    m = _measure(_pair(0.005), feeds=_feeds(size=21845), fixed=64, mode="fixed")
    assert m.decided and m.note is None
    m = _measure(_pair(0.005), feeds=_feeds(size=21845), fixed=32, mode="fixed")
    assert m.decided and "adaptive sampling decides a pass of this model from 64" in m.note


def _lin(drop: float, se: float) -> estimate.Linear:
    figs = ("drop", "gain_offset")
    return estimate.Linear(
        {"drop": drop, "gain_offset": 0.001}, dict.fromkeys(figs, se), None, dict.fromkeys(figs, (0.0, 0.0))
    )


def test_the_first_look_is_the_pilot_doubled_until_it_covers_the_need():
    budgets = judge.budgets_of(0.01)
    # needs far under the pilot (se 1e-6): the first look is the pilot itself
    assert measure.plan_looks([_lin(0.001, 1e-6)], budgets, 32, 256, 32) == [32, 64, 128, 256]
    assert measure.plan_looks([_lin(0.05, 1e-6)], budgets, 32, 256, 32) == [32, 64, 128, 256]
    # drop 0.005, se 0.001 needs 200 samples (worked above): 32 -> 64 -> 128 -> 256
    assert measure.plan_looks([_lin(0.005, 0.001)], budgets, 32, 4096, 32) == [256, 512, 1024, 2048, 4096]
    # a pass waits for its floor
    assert measure.plan_looks([_lin(0.001, 1e-6)], budgets, 32, 4096, 2048) == [2048, 4096]


def test_an_sqnr_left_undefined_by_an_exact_output_decides_within():
    exact = _fig(drop=0.0, ci=(0.0, 0.0), sqnr_db=None)  # its sqnr_db_ci is None too
    decision = measure.decide([exact], {"y"}, judge.budgets_of(0.01, sqnr_db=30.0), 0.95, 64, (32, 32))
    assert decision[0] == "within"


def test_the_worst_error_is_also_given_against_the_fp32_range():
    x = np.arange(4.0)  # range 3
    o = _one_output(lambda i: x, lambda i: x + np.array([0.0, 0.0, 0.0, 0.3]) * (i == 6))
    assert o.max_abs_error == pytest.approx(0.3) and o.worst_sample == 6
    assert o.max_abs_error_rel == pytest.approx(0.1)  # 0.3 / 3
    o = _one_output(lambda i: x / 6, lambda i: x / 6 + np.array([0.0, 0.05, 0.0, 0.0]) * (i == 2))
    assert o.max_abs_error_rel == pytest.approx(0.1)  # 0.05 / 0.5: a range under 1 is a range too


def test_the_undecided_reason_names_the_first_straddling_interval():
    within = _fig("a", drop=0.004, ci=(0.0035, 0.0045))
    straddles = _fig("b", drop=0.009, ci=(0.006, 0.012))
    why = _decide(within, straddles)[3]
    assert why == "the 95.0% interval of the drop [0.006, 0.012] straddles 0.01 on output 'b'"
    assert _decide(straddles)[3] == "the 95.0% interval of the drop [0.006, 0.012] straddles 0.01"
    also = _fig("c", drop=0.01, ci=(0.005, 0.015))
    assert _decide(within, straddles, also)[3].endswith("[0.006, 0.012] straddles 0.01 on output 'b'")  # the first


def test_a_drop_is_precise_on_the_tenth_of_the_budget_exactly():
    # half-width (0.2 * 0.01) / 2 is 0.1 * 0.01 to the last bit; at 95 % nothing is widened
    assert _decide(_fig(drop=0.001, ci=(0.0, 0.2 * 0.01)))[1] is True


def test_one_sample_has_figures_and_no_verdict():
    m = _measure(_pair(0.1), fixed=1, mode="fixed")
    assert m.outputs[0].verdict == "ok" and m.outputs[0].samples == 1 and not m.decided


def test_each_look_is_judged_on_its_own_samples():
    # drop 0.0126 (noise 0.16) with 2 values a sample: undecided at the first look, over at the second
    m = _measure(_pair(0.16), GateSettings(max_samples=1024), feeds=_feeds(size=2))
    assert (m.sampling.steps, m.sampling.samples, m.sampling.stopped) == ([256, 512], 512, "decided")
    assert m.outputs[0].samples == 512 and m.decided


def test_the_looks_confidence_is_written_to_six_places():
    assert Sampling("adaptive", level=0.98765432).record().to_json()["look_confidence"] == 0.987654


def test_an_exact_constant_output_has_plcc_one_and_drop_zero():
    o = _one_output(lambda i: np.ones(3), lambda i: np.ones(3))
    assert (o.verdict, o.plcc, o.drop) == ("ok", 1.0, 0.0)


def test_batches_take_at_most_their_size_and_keep_each_samples_index():
    sizes = []
    x = np.arange(4.0)

    def run_pair(chunk, first):
        sizes.append(len(chunk))
        q = [x + 0.5 * (first + j == 6) + 0.001 * (first + j) for j in range(len(chunk))]
        return [[x for _ in chunk]], [q]

    m = _measure(run_pair, fixed=64, mode="fixed", batch=4)
    assert m.sampling.samples == 64 and max(sizes) == 4 and sum(sizes) == 64
    assert m.outputs[0].worst_sample == 6
    sizes.clear()  # a batch that does not divide the count: the last one is cut to fit
    m = _measure(run_pair, fixed=64, mode="fixed", batch=3)
    assert m.sampling.samples == 64 and sizes == [3] * 5 + [1] + [3] * 5 + [1] + [3] * 10 + [2]  # 16, 32, 64


def test_rel_rmse_uses_a_twentieth_of_the_rms_when_the_output_barely_varies():
    # fp32 9.9 and 10.1 (std 0.1, RMS sqrt(100.01) = 10.0005), int8 off by 0.01: RMSE 0.01; the
    # scale is max(0.1, 0.05 * 10.0005) = 0.500025, so rel_rmse = 0.01 / 0.500025 = 0.0199990
    s = sums.OutputSums()
    for _ in range(8):
        s.add(np.array([9.9, 10.1]), np.array([9.91, 10.09]))
    assert estimate.linear(s).point["rel_rmse"] == pytest.approx(0.0199990, rel=1e-5)
    assert estimate.linear(s).point["rmse"] == pytest.approx(0.01)  # in the output's units
    est = estimate.estimate(s, [0, 1])
    assert est.point["rmse"] == pytest.approx(0.01) and est.intervals["rmse"].high == pytest.approx(0.01)


# -- estimate: the sums --------------------------------------------------------------------------------
def test_samples_keep_their_index_across_buffers_and_batches():
    s = sums.OutputSums()
    s.add(np.zeros(3), np.zeros(3))
    s.add(np.zeros(3), np.full(3, 0.1))
    s.add(np.zeros(4), np.zeros(4))  # another size: what is held is folded first
    s.add(np.zeros(4), np.full(4, 0.5))  # sample 3, the worst
    assert s.samples == 4  # (reading the count folds what is held)
    assert (s.worst_sample, s.max_abs_error) == (3, 0.5)
    s = sums.OutputSums()
    s.add_many(np.zeros((3, 2)), np.zeros((3, 2)))
    s.add_many(np.zeros((3, 2)), np.array([[0.0, 0.0], [0.0, 0.7], [0.0, 0.0]]))  # sample 4
    assert s.samples == 6 and s.worst_sample == 4


def test_bad_samples_are_recorded_not_folded():
    s = sums.OutputSums()
    s.add_many(np.zeros((2, 3)), np.zeros((2, 4)))
    assert s.size_mismatch == (0, 3, 4) and s.samples == 0
    s = sums.OutputSums()
    s.add_many(np.zeros((0, 3)), np.zeros((0, 3)))
    assert s.samples == 0 and s.size_mismatch is None
    s = sums.OutputSums()
    s.add(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))
    assert (s.samples, s.fp32_nonfinite, s.int8_nonfinite) == (0, 0, None)


def test_raw_values_are_folded_before_they_pass_fold_elements():
    s = sums.OutputSums()
    big = np.zeros(sums.FOLD_ELEMENTS // 4)
    for _ in range(9):
        s.add(big, big)
        assert s._buf_elems < sums.FOLD_ELEMENTS and len(s._buf_x) < 4
    assert s.samples == 9


def test_a_partial_block_of_samples_is_counted():
    s = sums.OutputSums()
    n = 2 * sums.ROW_CAP + 1  # past 4,096 rows, samples are summed in pairs; one is left over
    s.add_many(np.arange(n, dtype=np.float64)[:, None], np.arange(n, dtype=np.float64)[:, None])
    m = s.matrix()
    assert m[:, sums.N].sum() == n and s.samples == n and len(m) == sums.ROW_CAP + 1


def test_a_large_offset_does_not_cost_the_drop_its_precision():
    # values 10,000 apart from 0, varying by 0.001: without centring, the variance would be the
    # difference of two numbers 1e14 times larger than it. The true figures come from numpy's
    # two-pass corrcoef, which subtracts the mean first.
    rng = np.random.default_rng(2)
    x = 1e4 + 1e-3 * rng.standard_normal((64, 8))
    y = x + 1e-4 * rng.standard_normal((64, 8))
    s = sums.OutputSums()
    for a, b in zip(x, y, strict=True):
        s.add(a, b)
    want = 1.0 - np.corrcoef(x.ravel(), y.ravel())[0, 1]  # about 0.005
    assert estimate.linear(s).point["drop"] == pytest.approx(want, rel=1e-6)


def test_every_interval_holds_its_point_and_stays_in_the_figures_range():
    rng = np.random.default_rng(4)
    for sign in (1.0, -1.0):
        s = sums.OutputSums()
        for _ in range(64):
            x = rng.standard_normal(8)
            s.add(x, sign * x + 0.3 * rng.standard_normal(8) + 0.1)
        est = estimate.estimate(s, [0, 1])
        for k in estimate.FIGURES:
            iv = est.intervals[k]
            assert iv is not None and iv.low <= est.point[k] <= iv.high, (sign, k, iv, est.point[k])
        assert est.intervals["drop"].low >= 0.0 and est.intervals["drop"].high <= 2.0
        assert est.intervals["rmse"].low >= 0.0


def test_the_bootstrap_draws_whole_samples_from_the_seeded_generator():
    # replicate r: n whole samples drawn with replacement by default_rng(seed).integers(0, n, n),
    # the r-th such draw; its drop is 1 - PLCC of the drawn samples' values (numpy's corrcoef)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((40, 5))
    y = x + 0.3 * rng.standard_normal((40, 5))
    s = sums.OutputSums()
    for a, b in zip(x, y, strict=True):
        s.add(a, b)
    reps = estimate.replicate_rows(s.matrix(), [3, 0xB007], s.scale)["drop"]
    draws = np.random.default_rng([3, 0xB007])
    for r in range(estimate.BOOTSTRAP_REPLICATES):
        idx = draws.integers(0, 40, 40)
        if r in (0, 1, 24, 25, 999):
            want = 1.0 - np.corrcoef(x[idx].ravel(), y[idx].ravel())[0, 1]
            assert reps[r] == pytest.approx(want, rel=1e-9), r
    other = estimate.replicate_rows(s.matrix(), [4, 0xB007], s.scale)["drop"]
    assert not np.array_equal(reps, other)


def test_a_figure_undefined_in_most_replicates_has_no_interval():
    half = np.r_[np.full(500, np.nan), np.linspace(0.0, 1.0, 500)]
    assert estimate.interval(half) is None
    most = np.r_[np.full(50, np.nan), np.linspace(0.0, 1.0, 950)]  # 95 % finite
    iv = estimate.interval(most)
    assert iv is not None and iv.low == pytest.approx(0.025, abs=2e-3) and iv.high == pytest.approx(0.975, abs=2e-3)


def _timed(per_sample, monkeypatch, noise=0.1414):
    """A run whose n-th sample takes per_sample(n) seconds of a fake clock."""
    clock = fake_clock(monkeypatch)

    def run_pair(chunk, first):
        clock[0] += sum(per_sample(first + j) for j in range(len(chunk)))
        return _pair(noise)(chunk, first)

    return run_pair


def test_the_time_cap_is_checked_from_16_samples_on(monkeypatch):
    # 1 s a sample, a 20 s cap: 16 samples take 16 s, 16 more would not fit
    m = _measure(_timed(lambda n: 1.0, monkeypatch), GateSettings(max_seconds=20.0))
    assert (m.sampling.samples, m.sampling.stopped) == (16, "time cap")


def test_a_step_that_overruns_on_its_last_sample_keeps_it(monkeypatch):
    # the pilot: 32 samples in 16 s; then 2.05 s a sample passes 80 s (twice the cap) only at the 64th
    run_pair = _timed(lambda n: 0.5 if n < 32 else 2.05, monkeypatch)
    m = _measure(run_pair, GateSettings(max_seconds=40.0))
    assert (m.sampling.samples, m.sampling.stopped) == (64, "time cap")


def test_a_first_sample_past_twice_the_cap_is_kept(monkeypatch):
    m = _measure(_timed(lambda n: 100.0, monkeypatch), GateSettings(max_seconds=40.0))
    assert (m.sampling.samples, m.sampling.stopped) == (1, "time cap") and m.outputs[0].samples == 1


# -- the reference method's figures (the gate's own under reference_compat), by hand ---------------
def test_compare_figures_by_hand():
    fp = np.array([0.1, 0.2, 0.3, 0.4])
    c = compare(fp, np.array([0.1, 0.3, 0.2, 0.4]))
    # errors (0, 0.1, -0.1, 0): noise 0.02, signal 0.01 + 0.04 + 0.09 + 0.16 = 0.3
    assert c.sqnr_db == pytest.approx(10 * math.log10(15.0))  # 11.76 dB
    assert c.nmse == pytest.approx(0.02 / 0.3)
    assert c.max_abs_error == pytest.approx(0.1) and c.max_abs_error_rel == pytest.approx(0.1 / 0.3)
    c = compare(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert c.nmse == pytest.approx(2.0 / 30.0) and c.max_abs_error_rel == pytest.approx(1.0 / 3.0)


def test_compare_edge_cases():
    assert (compare(np.zeros(0), np.zeros(0)).verdict, compare(np.zeros(0), np.zeros(0)).note) == (
        "error",
        "output is empty",
    )
    one = compare(np.array([2.0]), np.array([2.0]))  # one value is a constant output, not an empty one
    assert (one.verdict, one.plcc, one.drop, one.max_abs_error) == ("ok", 1.0, 0.0, 0.0)
    same = compare(np.ones(5), np.ones(5))
    assert (same.verdict, same.plcc, same.drop, same.max_abs_error) == ("ok", 1.0, 0.0, 0.0)
    nan = compare(np.arange(4.0), np.array([0.0, np.nan, 2.0, 3.0]))
    assert (nan.verdict, nan.note) == ("fail", "int8 output has NaN or inf where fp32 is finite (sample 0)")
    silent = compare(np.zeros(3), np.array([0.0, 1.0, 0.0]))  # no signal at all: no SQNR, not -inf
    assert silent.sqnr_db is None and silent.verdict == "fail"
    huge = compare(np.array([1e200, -1e200, 1e200]), np.array([1e200, -1e200, 0.9e200]))  # products overflow
    assert (huge.verdict, huge.note, huge.drop) == ("fail", "PLCC is not finite", None)


def test_a_drop_interval_widened_past_two_stops_at_two():
    rng = np.random.default_rng(4)
    s = sums.OutputSums()
    for _ in range(32):
        x = rng.standard_normal(1)
        s.add(x, -x + 0.2 * rng.standard_normal(1))  # drop about 1.987, one value a sample
    est = estimate.estimate(s, [0, 1])
    assert 1.9 < est.point["drop"] < 2.0 and est.intervals["drop"].high == 2.0  # 1 - PLCC is at most 2


def test_values_far_larger_than_the_first_are_rescaled_not_overflowed():
    s = sums.OutputSums()
    s.add_many(np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 2.0, 3.1]]))  # folded at once: scale 1/4
    s.add_many(np.array([[1e200, 2e200, 3e200]]), np.array([[1e200, 2e200, 3.1e200]]))  # squares pass 1e308
    point = estimate.linear(s).point
    assert all(np.isfinite(point[k]) for k in ("drop", "sqnr_db", "rmse", "gain_offset")), point
    # PLCC does not change when every value is divided by 1e200: numpy's corrcoef of the scaled values
    x = [1e-200, 2e-200, 3e-200, 1.0, 2.0, 3.0]
    y = [1e-200, 2e-200, 3.1e-200, 1.0, 2.0, 3.1]
    assert point["drop"] == pytest.approx(1.0 - np.corrcoef(x, y)[0, 1], rel=1e-6)


@pytest.mark.parametrize("offset", [0.0, 3.0, 100.0])  # 100: rel_rmse on its RMS share
def test_each_figures_gradient_is_its_numerical_derivative(offset):
    # central differences of figures() along each column of the totals: an independent check of
    # the analytic gradients the standard errors (and so the planned looks) come from
    rng = np.random.default_rng(6)
    s = sums.OutputSums()
    for _ in range(50):
        x = rng.standard_normal(4) + offset
        s.add(x, 1.05 * x + 0.2 + 0.3 * rng.standard_normal(4))
    t = s.matrix().sum(axis=0)
    grads = estimate.gradients(t)
    for k in estimate.FIGURES:
        for c in range(sums.COLUMNS):
            h = 1e-6 * max(abs(t[c]), 1.0)
            up, down = t.copy(), t.copy()
            up[c] += h
            down[c] -= h
            numeric = (estimate.figures(up)[k] - estimate.figures(down)[k]) / (2 * h)
            assert grads[k][c] == pytest.approx(numeric, rel=1e-4, abs=1e-9), (k, c)


# -- registry: each schema problem names its field, its line and its fix ----------------------------------
def test_schema_problems_name_the_field_the_line_and_the_fix(repo):
    models = [
        {"id": "a", "onnx": "a.onnx", "quant_mode": "bogus"},
        {"id": "b", "onnx": "b.onnx", "sha256": "XYZ"},
        {"id": "c", "onnx": "c.onnx", "quant_accuracy_budget_plcc": 3},
        {"id": "d", "onnx": "d.onnx", "quant_gate_samples": 0},
        {"id": "e", "onnx": "e.onnx", "quant_accuracy_budget_rmse": "x"},
        {"onnx": "f.onnx"},
        {"id": "g", "onnx": "g.onnx", "quant_mode": "static"},
    ]
    reg = load_registry(write_registry(repo / "registry.json", models))
    got = [(p.where, p.line, p.fix) for p in reg.problems]
    # indent=2: entry k (5 lines each) starts on line 4 + 5k; its third field is 3 lines below
    assert got == [
        ("models[0].quant_mode", 7, 'use one of "fp32", "dynamic", "static", "qat"'),
        ("models[1].sha256", 12, "write the digest as 64 lowercase hex characters (sha256sum prints it)"),
        ("models[2].quant_accuracy_budget_plcc", 17, "use a number between 0 and 1 (the default is 0.01)"),
        ("models[3].quant_gate_samples", 22, "respect minimum 1"),
        ("models[4].quant_accuracy_budget_rmse", 27, "give a JSON number"),
        ("models[5]", None, 'add "id"'),
        (
            "models[6]",
            33,  # f has 3 lines: g's "{" is on 32, its id on 33
            'add "quant_calibration_set": "path/to/set.npz" (relative to the repository root), '
            'or use quant_mode "dynamic"',
        ),
    ]
    assert [e.id for e in reg.entries if e.problems] == ["a", "b", "c", "d", "e", "models[5]", "g"]


def test_a_registry_unusable_whole_is_one_error(repo, monkeypatch):
    reg = write_registry(repo / "registry.json", [{"id": "a", "onnx": "a.onnx"}])
    with pytest.raises(UserError, match="is not a folder"):
        load_registry(reg, root=repo / "nowhere")
    (repo / "list.json").write_text("[]")
    with pytest.raises(UserError, match='top level must be an object with a "models" array'):
        load_registry(repo / "list.json")
    monkeypatch.setenv("QUANTGATE_MAX_REGISTRY_ENTRIES", "2")
    three = write_registry(repo / "three.json", [{"id": str(i), "onnx": f"{i}.onnx"} for i in range(3)])
    with pytest.raises(UserError, match="lists 3 models, over the limit of 2"):
        load_registry(three)
    two = write_registry(repo / "two.json", [{"id": str(i), "onnx": f"{i}.onnx"} for i in range(2)])
    assert len(load_registry(two).entries) == 2


def test_two_looks_each_need_more_than_95_percent_and_at_most_bonferronis():
    # any look wrong at most 5 % in all: above 95 % each, and at most 97.5 % (Bonferroni's bound)
    assert estimate.look_level((64,)) == 0.95
    assert 0.95 < estimate.look_level((32, 64)) <= 0.975
    assert estimate.look_level((32, 64)) < estimate.look_level((32, 64, 128, 256))


def test_a_figure_resting_on_one_sample_has_no_interval_and_no_error():
    s = sums.OutputSums()
    x = np.arange(4.0)
    for i in range(40):
        s.add(x, x + (0.5 if i == 7 else 0.0))  # all the error in sample 7: without it SQNR is infinite
    est = estimate.estimate(s, [0, 1])
    assert est.intervals["sqnr_db"] is None and np.isfinite(est.point["sqnr_db"])


def test_misspelt_fields_are_warned_about_and_the_projects_own_are_not(repo):
    entry = {"id": "m", "onnx": "m.onnx", "quant_mdoe": "dynamic", "sha265": "x", "owner": "team", "uid": 3}
    reg = load_registry(write_registry(repo / "registry.json", [entry]))
    e = reg.get("m")
    said = {w.where: w.message for w in e.warnings}
    assert set(said) == {"models[0].quant_mdoe", "models[0].sha265"} and not e.problems
    assert "did you mean 'quant_mode'" in said["models[0].quant_mdoe"]
    assert "did you mean 'sha256'" in said["models[0].sha265"]
    with pytest.raises(UserError, match="no model with id 'x'; known ids: m"):
        reg.get("x")


# -- inputs: what is drawn -------------------------------------------------------------------------------
def _sig(name, dtype, dims):
    from quantgate.onnxio import TensorSig

    return TensorSig(name, np.dtype(dtype), tuple(dims))


def test_the_input_plan_follows_the_documented_defaults():
    from quantgate.inputs import plan_inputs

    plans = plan_inputs([_sig("f", "float32", ("batch", 3)), _sig("i", "int64", (2,)), _sig("b", "bool", (1,))])
    assert [(p.name, p.shape, p.low, p.high) for p in plans] == [
        ("f", (1, 3), 0.0, 1.0),  # a symbolic dim is 1, floats uniform in [0, 1)
        ("i", (2,), 0.0, 10.0),  # integers in [0, 10) without an embedding table
        ("b", (1,), 0.0, 2.0),
    ]
    spec = {"f": {"dims": {"batch": 4}, "low": -2, "high": 2}, "i": {"shape": [2], "high": 3}}
    plans = plan_inputs([_sig("f", "float32", ("batch", 3)), _sig("i", "int64", (2,))], spec)
    assert [(p.shape, p.low, p.high, p.source) for p in plans] == [
        ((4, 3), -2.0, 2.0, "dims.batch, spec range"),
        ((2,), 0.0, 3.0, "spec shape, spec range"),
    ]


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"g": {}}, "quant_inputs names 'g', which the model does not have"),
        ({"f": {"shape": [1]}}, "quant_inputs.f.shape: has 1 dims, the model's input has 2"),
        ({"f": {"shape": [2, 4]}}, "contradicts the model's fixed dims"),
        ({"f": {"dims": {"other": 2}}}, "quant_inputs.f.dims: names other, not symbolic dims of the input"),
        ({"f": {"low": 1, "high": 1}}, "high (1.0) must be greater than low (1.0)"),
        ({"i": {"high": 2.5}}, "would draw 0 to 1; give whole numbers"),
        ({"i": {"low": 0.2, "high": 0.7}}, "would draw nothing; give whole numbers"),
        ({"i": {"high": 1.5}}, "would draw only 0; give whole numbers"),
        ({"i": {"low": -1, "high": 300}}, "does not fit uint8"),
        ({"i": {"low": -1, "high": 10}}, "does not fit uint8"),
        ({"i": {"low": 0, "high": 257}}, "does not fit uint8"),
    ],
)
def test_an_input_spec_that_cannot_be_drawn_is_refused(spec, said):
    from quantgate.inputs import plan_inputs

    with pytest.raises(UserError, match=re.escape(said)):
        plan_inputs([_sig("f", "float32", ("n", 3)), _sig("i", "uint8", (2,))], spec)


def test_an_input_over_the_element_limit_is_refused_before_drawing(monkeypatch):
    from quantgate.inputs import plan_inputs

    monkeypatch.setenv("QUANTGATE_MAX_INPUT_ELEMENTS", "100")
    assert plan_inputs([_sig("f", "float32", (10, 10))])[0].shape == (10, 10)  # 100 is allowed
    with pytest.raises(UserError, match="one sample would draw 101 elements"):
        plan_inputs([_sig("f", "float32", (101,))])
    with pytest.raises(UserError, match="brings one sample to 120 elements across the inputs"):
        plan_inputs([_sig("f", "float32", (60,)), _sig("g", "float32", (60,))])


def test_a_large_sample_in_a_batch_keeps_its_index():
    # 2^17 values a sample: the held values are folded every 2 samples, so in a batch of 4 the
    # third sample starts a new buffer with the index the batch gives it
    def run_pair(chunk, first):
        return [[f["x"] for f in chunk]], [[f["x"] + 0.5 * (first + j == 6) for j, f in enumerate(chunk)]]

    m = _measure(run_pair, feeds=_feeds(size=1 << 17), fixed=8, mode="fixed", batch=4)
    assert m.outputs[0].worst_sample == 6


def test_an_exact_output_names_its_first_sample_as_the_worst():
    s = sums.OutputSums()
    for _ in range(3):
        s.add(np.arange(3.0), np.arange(3.0))
    assert s.samples == 3 and (s.max_abs_error, s.worst_sample) == (0.0, 0)


def test_a_sidecar_symlinked_out_of_the_repository_is_refused(repo, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "x.onnx"
    outside.write_bytes(b"x")
    (repo / "m.onnx").write_bytes(b"fp32")
    (repo / "m.int8.onnx").symlink_to(outside)
    reg = load_registry(
        write_registry(repo / "registry.json", [{"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic"}])
    )
    assert "leads outside the repository" in str(reg.get("m").problems[0])
    (repo / "m.int8.onnx").unlink()
    (repo / "m.int8.onnx").symlink_to(outside.parent / "gone.onnx")  # dangling, and outside
    reg = load_registry(repo / "registry.json")
    assert "leads outside the repository" in str(reg.get("m").problems[0])


def test_problems_and_warnings_carry_their_fields_line(repo):
    entry = {"id": "m", "onnx": "m.onnx", "quant_accuracy_budget_plcc": 0.02, "quant_mdoe": "x", "sha256": 5}
    reg = load_registry(write_registry(repo / "registry.json", [entry, {"id": "m", "onnx": "n.onnx"}]))
    first, second = reg.entries
    # indent=2: the first entry's "{" is on line 4, its fields on 5-9; the second's id on 12
    assert [(w.where, w.line) for w in first.warnings] == [("models[0].quant_mdoe", 8)]  # not the valid fields
    assert [(p.where, p.line, p.fix) for p in first.problems] == [("models[0].sha256", 9, "give a JSON string")]
    assert [(p.where, p.line) for p in second.problems] == [("models[1].id", 12)]


def test_registry_fields_the_gate_reads_are_carried(repo):
    entry = {
        "id": "m",
        "onnx": "m.onnx",
        "quant_inputs": {"x": {"low": -1, "high": 1}},
        "quant_gate_outputs": ["y"],
        "quant_nodes_to_exclude": ["b", "a", "a"],
        "quant_min_int8_weight_share": 0.5,
    }
    e = load_registry(write_registry(repo / "registry.json", [entry])).get("m")
    assert e.input_spec == {"x": {"low": -1, "high": 1}} and e.gate_outputs == ["y"]
    assert e.nodes_to_exclude == ("a", "b") and e.min_int8_share == 0.5


def test_entries_that_are_not_objects_and_top_level_problems_do_not_stop_the_load(repo):
    reg_path = write_registry(repo / "registry.json", ["just a string", {"id": "m", "onnx": "m.onnx"}])
    reg_path.write_text(reg_path.read_text().replace('"schema_version": 1', '"schema_version": "one"'))
    reg = load_registry(reg_path)
    wheres = [p.where for p in reg.problems]
    assert "schema_version" in wheres and "models[0]" in wheres
    assert [e.id for e in reg.entries] == ["m"] and not reg.get("m").problems


def test_two_modes_cannot_share_one_sidecar(repo):
    models = [
        {"id": "d", "onnx": "m.onnx", "quant_mode": "dynamic"},
        {"id": "s", "onnx": "m.onnx", "quant_mode": "static", "quant_calibration_set": "c.npz"},
        {"id": "d2", "onnx": "m.onnx", "quant_mode": "dynamic"},
    ]
    reg = load_registry(write_registry(repo / "registry.json", models))
    assert "one file cannot be both" in str(reg.get("s").problems[0])
    assert not reg.get("d").problems and not reg.get("d2").problems  # the same mode may share it


@pytest.mark.parametrize(("samples", "share"), [(1, 0.0), (2, 1.0)])
def test_the_smallest_pinned_count_and_the_edges_of_the_weight_share_are_kept(repo, samples, share):
    entry = {"id": "m", "onnx": "m.onnx", "quant_gate_samples": samples, "quant_min_int8_weight_share": share}
    e = load_registry(write_registry(repo / "registry.json", [entry])).get("m")
    assert (e.gate_samples, e.min_int8_share, e.problems) == (samples, share, [])


def test_a_gather_without_an_axis_indexes_rows_and_a_figure_on_its_budget_needs_forever():
    from onnx import TensorProto, helper, numpy_helper

    from quantgate.inputs import _gather_table_rows

    table = numpy_helper.from_array(np.zeros((50, 8), dtype=np.float32), "table")
    node = helper.make_node("Gather", ["table", "ids"], ["y"])  # no axis attribute: ONNX's default is 0
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])], [], [table])
    assert _gather_table_rows(helper.make_model(graph)) == {"ids": 50}
    assert measure._needed(DROP, 0.01, 0.001, (0.0, 0.0), 32) == math.inf  # exactly on the budget
