"""The gate's figures can be trusted: intervals that cover the large-sample drop on the shipped
models, identical results on every run, and no pass for a sidecar PLCC alone would wave through."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import modelzoo
from conftest import REPO, write_registry
from quantgate.gate import run_gate
from quantgate.produce.dynamic import quantize_dynamic

SHIPPED = REPO / "model" / "tiny" / "registry.json"


@pytest.fixture(scope="module")
def default_run():
    return run_gate(SHIPPED)


def _without_timing(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["run_provenance"].pop("utc")
    for row in doc["models"]:  # the measuring loop's timing: the one figure that is timed, not computed
        assert row.pop("loop_timing")["samples"] > 0
    return doc


def test_the_shipped_registry_passes_here_without_docker(default_run):
    assert default_run.verdict == "pass", [(r.id, r.status, r.reason) for r in default_run.models]
    assert {r.id for r in default_run.models} == {
        "conv_filter_v1",
        "nr_metric_v1",
        "mlp_regressor_v1",
        "two_input_v1",
        "outlier_mlp_v1",
    }


def test_same_inputs_same_results_document(default_run):
    again = run_gate(SHIPPED)
    assert _without_timing(again.to_json()) == _without_timing(default_run.to_json())


def test_every_drawn_model_reports_its_interval_and_sample_count(default_run):
    for row in default_run.models:
        if row.sampling.mode == "eval set":
            continue
        assert row.drop_ci is not None and row.drop_ci.low <= row.drop <= row.drop_ci.high, row.id
        # small models: a pass is decided from 2,048 samples (the pass floor), a look or the cap later
        assert row.samples >= 2048 and row.sampling.stopped in ("decided", "sample cap"), row.id


def test_the_interval_covers_the_large_sample_drop(default_run):
    """16,384 samples drawn from another seed: a 4x larger, independent measurement."""
    big = run_gate(SHIPPED, samples=16384, seed=1)
    for row in default_run.models:
        if row.sampling.mode == "eval set":
            continue
        truth = big.row(row.id).drop
        assert row.drop_ci.low <= truth <= row.drop_ci.high, (row.id, row.drop_ci, truth)


def _append_gain_offset(int8_path, gain, offset):
    """The sidecar's output turned into gain * output + offset: PLCC cannot tell."""
    m = onnx.load(str(int8_path))
    out = m.graph.output[0].name
    m.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(gain, np.float32), "gain_k"),
            numpy_helper.from_array(np.array(offset, np.float32), "offset_k"),
        ]
    )
    for n in m.graph.node:
        n.output[:] = [o + "_raw" if o == out else o for o in n.output]
    m.graph.node.extend(
        [
            helper.make_node("Mul", [out + "_raw", "gain_k"], [out + "_g"]),
            helper.make_node("Add", [out + "_g", "offset_k"], [out]),
        ]
    )
    onnx.save(m, str(int8_path))


def test_a_gain_and_offset_error_fails_though_plcc_is_perfect(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    shipped = (repo / "mlp.int8.onnx").read_bytes()
    reg = write_registry(repo / "registry.json", [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}])
    good = run_gate(reg, samples=256).models[0]
    assert good.status == "pass" and good.outputs[0].gain_offset < 0.02  # fine by PLCC and by eye
    _append_gain_offset(repo / "mlp.int8.onnx", 1000.0, 5.0)
    row = run_gate(reg, samples=256).models[0]
    assert row.drop == pytest.approx(good.drop, rel=1e-3)  # PLCC sees nothing
    assert row.status == "fail" and "sanity floor" in row.reason and row.sqnr_db < -50
    assert row.budgets.to_json() == {"drop": 0.01, "gain_offset": 0.05}
    # a 10 % gain, or the offset with the same error energy, fails too (PLCC still sees nothing)
    rms = float(np.sqrt(good.outputs[0].rmse ** 2 / good.outputs[0].nmse))  # the fp32 output's RMS
    for gain, offset in ((1.1, 0.0), (0.9, 0.0), (1.0, 0.1 * rms), (1.0, -0.1 * rms)):
        (repo / "mlp.int8.onnx").write_bytes(shipped)
        _append_gain_offset(repo / "mlp.int8.onnx", gain, offset)
        row = run_gate(reg, samples=256).models[0]
        assert row.drop == pytest.approx(good.drop, rel=0.05), (gain, offset)
        assert row.status == "fail" and "gain/offset error" in row.reason, (gain, offset, row.reason)
        assert row.outputs[0].gain_offset_ci.low > 0.05  # a 10 % error is 0.1 of the RMS


def test_explicit_sqnr_and_rmse_budgets_replace_the_floor(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    row = run_gate(
        write_registry(repo / "registry.json", [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}])
    ).models[0]
    tight = write_registry(
        repo / "r2.json",
        [
            {
                "id": "mlp",
                "onnx": fp32.name,
                "quant_mode": "dynamic",
                "quant_accuracy_budget_sqnr_db": row.sqnr_db + 20,
                "quant_accuracy_budget_rmse": 1.0,
            }
        ],
    )
    t = run_gate(tight).models[0]
    assert t.budgets.to_json() == {"drop": 0.01, "sqnr_db": row.sqnr_db + 20, "rmse": 1.0}
    assert t.status == "fail" and "SQNR" in t.reason and "quant_accuracy_budget_sqnr_db" in t.reason


def test_a_copy_of_the_fp32_file_is_not_an_int8_sidecar(repo):
    fp32 = modelzoo.mlp(repo)
    shutil.copy(fp32, repo / "mlp.int8.onnx")
    reg = write_registry(repo / "registry.json", [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}])
    row = run_gate(reg).models[0]
    assert row.status == "error" and "no quantised operator" in row.reason
