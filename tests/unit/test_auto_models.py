"""`auto` and `explain` on models they were not built around (a review's findings, each pinned):
tied weights, a single weight node, symbolic dims a model needs fixed, weights inside If bodies,
an eval set as the only data, a model that cannot be quantised, what the terminal says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import modelzoo
from quantgate import coverage
from quantgate.auto import candidates as cands
from quantgate.auto import run_auto
from quantgate.auto.apply import plan
from quantgate.auto.search import Outcome
from quantgate.auto.trial import Tried
from quantgate.explain import explain_entry
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "model" / "tiny"


def _save(tmp: Path, name: str, nodes, inputs, outputs, inits) -> Path:
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    path = tmp / f"{name}.onnx"
    onnx.save(m, path)
    return path


def _w(rng, shape, name):
    return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name)


def _registry(tmp: Path, *entries: dict) -> Path:
    (tmp / ".git").mkdir(exist_ok=True)
    reg = tmp / "registry.json"
    reg.write_text(json.dumps({"models": list(entries)}, indent=2) + "\n")
    return reg


def tied(tmp: Path) -> Path:
    """x [N,8] -> MatMul(W) -> Relu -> MatMul(W) -> MatMul(V) -> y: W is read by two nodes."""
    rng = np.random.default_rng(0)
    f = helper.make_tensor_value_info
    return _save(
        tmp,
        "tied",
        [
            helper.make_node("MatMul", ["x", "W"], ["a"], name="m1"),
            helper.make_node("Relu", ["a"], ["r"], name="r1"),
            helper.make_node("MatMul", ["r", "W"], ["b"], name="m2"),
            helper.make_node("MatMul", ["b", "V"], ["y"], name="m3"),
        ],
        [f("x", TensorProto.FLOAT, ["N", 8])],
        [f("y", TensorProto.FLOAT, ["N", 4])],
        [_w(rng, (8, 8), "W"), _w(rng, (8, 4), "V")],
    )


def test_tied_weights_are_noted_not_fatal(tmp_path):
    model = tied(tmp_path)
    ex = explain_entry(str(model), None, mode="dynamic")
    notes = " ".join(ex.notes)
    # one of the two nodes that read W cannot stay in float while the other is quantised
    assert "cannot be kept in float on its own: shares its weights with m" in notes
    assert {n.node for n in ex.nodes} == {"m1", "m2", "m3"}
    kept = next(n for n in ex.nodes if n.node == "m3")
    assert kept.drop_kept is not None  # the untied node still gets its figure


def test_a_model_with_one_weight_node_is_explained(tmp_path):
    model = modelzoo.tiny(tmp_path)
    ex = explain_entry(str(model), None, mode="dynamic")
    assert len(ex.nodes) == 1 and ex.nodes[0].drop_kept is None
    assert any("cannot be kept in float on its own" in n for n in ex.notes)


def test_the_producers_check_run_uses_the_entrys_quant_inputs(tmp_path):
    """x [1, seq, 4] reshaped to [1, 64]: runs only at seq = 16, which quant_inputs sets."""
    rng = np.random.default_rng(1)
    f = helper.make_tensor_value_info
    _save(
        tmp_path,
        "seq",
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"], name="flatten"),
            helper.make_node("MatMul", ["flat", "W"], ["y"], name="head"),
        ],
        [f("x", TensorProto.FLOAT, [1, "seq", 4])],
        [f("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(np.array([1, 64], np.int64), "shape"), _w(rng, (64, 8), "W")],
    )
    reg = _registry(tmp_path, {"id": "s", "onnx": "seq.onnx", "quant_inputs": {"x": {"dims": {"seq": 16}}}})
    o = run_auto(reg, ["s"], dry_run=True).outcomes[0]
    assert o.tried[0].candidate.name == "dynamic" and o.tried[0].status == "pass", o.tried[0].reason


def test_coverage_counts_weights_inside_if_bodies(tmp_path):
    """A top MatMul of 16 weights and an If whose branches hold 64 each: the quantisers leave the
    branches in float, so the sidecar stores 16 of 144 weights in int8."""
    rng = np.random.default_rng(2)
    f = helper.make_tensor_value_info

    def branch(name: str, w: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("MatMul", ["h", w], [f"{name}_out"], name=f"{name}_mm")],
            name,
            [],
            [f(f"{name}_out", TensorProto.FLOAT, [1, 8])],
            [_w(rng, (8, 8), w)],
        )

    model = _save(
        tmp_path,
        "cond",
        [
            helper.make_node("MatMul", ["x", "T"], ["h"], name="top"),
            helper.make_node(
                "If", ["c"], ["y"], name="choose", then_branch=branch("a", "A"), else_branch=branch("b", "B")
            ),
        ],
        [f("x", TensorProto.FLOAT, [1, 2]), f("c", TensorProto.BOOL, [])],
        [f("y", TensorProto.FLOAT, [1, 8])],
        [_w(rng, (2, 8), "T")],
    )
    r = quantize_dynamic(model, tmp_path / "cond.int8.onnx")
    assert (r.coverage.weight_params, r.coverage.int8_params) == (2 * 8 + 2 * 64, 16)
    assert r.coverage.int8_share < coverage.MIN_SHARE and r.coverage.float_ops == {"MatMul": 2}


def test_an_eval_set_is_split_into_a_calibration_half_and_a_judging_half(tmp_path):
    shutil.copytree(TINY, tmp_path / "model" / "tiny")
    (tmp_path / ".git").mkdir()
    reg = tmp_path / "model" / "tiny" / "registry.json"
    doc = json.loads(reg.read_text())
    e = next(m for m in doc["models"] if m["id"] == "two_input_v1")
    del e["quant_calibration_set"], e["int8_sha256"]
    e["quant_mode"] = "fp32"
    reg.write_text(json.dumps(doc, indent=2))
    o = run_auto(reg, ["two_input_v1"], dry_run=True).outcomes[0]
    static = next(t for t in o.tried if t.candidate.name == "static")
    n_eval = len(np.load(tmp_path / "model" / "tiny" / "eval" / "two_input_v1.npz")["ref"])
    assert static.row is not None and static.row.samples == n_eval // 2  # judged on the half it did not see
    assert o.calibration is not None and "every other sample of the eval set" in o.calibration.note
    assert len(o.calibration.arrays["ref"]) == (n_eval + 1) // 2


def test_a_model_that_cannot_be_searched_is_an_error_and_the_others_go_on(tmp_path):
    shutil.copy(TINY / "mlp_regressor_v1.onnx", tmp_path / "a.onnx")
    shutil.copy(TINY / "mlp_regressor_v1.onnx", tmp_path / "b.onnx")
    reg = _registry(tmp_path, {"id": "a", "onnx": "a.onnx", "sha256": "0" * 64}, {"id": "b", "onnx": "b.onnx"})
    report = run_auto(reg, ["a", "b"], dry_run=True)
    a, b = report.outcomes
    assert a.error is not None and "sha256" in a.error and a.tried == []
    assert b.error is None and b.chosen is not None
    assert report.exit_code == 2


def test_keep_fp32_by_preference_ships_fp32(tmp_path):
    reg = _registry(tmp_path, {"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic"})
    shutil.copy(TINY / "mlp_regressor_v1.onnx", tmp_path / "m.onnx")
    e = load_registry(reg).get("m")
    t = Tried(cands.first("dynamic"), "pass")
    said = Outcome(e, [t], None, "keep fp32: slower", None, 0.0, keep_fp32=True, found=True)
    assert plan(said, tmp_path).changes == {"quant_mode": "fp32"}
    none_fits = Outcome(e, [t], None, "keep fp32: no candidate", None, 0.0, keep_fp32=True, found=False)
    assert plan(none_fits, tmp_path).changes == {}  # no answer within budget: the user decides


def test_the_shipped_sidecar_is_a_candidate_and_a_passing_one_is_kept_at_no_cost():
    o = run_auto(TINY / "registry.json", ["nr_metric_v1"], dry_run=True).outcomes[0]
    assert [t.candidate.name for t in o.tried] == ["current"]
    assert o.chosen is o.tried[0] and o.decision.startswith("keep the shipped static sidecar")
