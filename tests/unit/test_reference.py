"""`--reference-compat` reproduces the first user's reference method exactly.

The reference is recomputed here independently: 16 draws of uniform [0, 1) float32 from one
numpy.random.default_rng(0) in sequence, every non-fixed dim set to 1, the first output of each
sample flattened and concatenated, drop = 1 - corrcoef(fp32, int8)[0, 1].
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import write_registry
from quantgate.gate import run_gate
from quantgate.produce.static import quantize_static


def _conv_metric(path, batch_dim):
    rng = np.random.default_rng(7)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (4, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["frame", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "w2"], ["score"]),
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("frame", TensorProto.FLOAT, [batch_dim, 1, 12, 12])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch_dim, 1])],
        [w1, b1, w2],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _reference_drop(fp32, int8):
    s_fp = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    s_q = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    inp = s_fp.get_inputs()[0]
    out = s_fp.get_outputs()[0].name
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in inp.shape)
    rng = np.random.default_rng(0)
    a, b = [], []
    for _ in range(16):
        x = rng.random(shape, dtype=np.float32)
        a.append(s_fp.run([out], {inp.name: x})[0].ravel())
        b.append(s_q.run([out], {inp.name: x})[0].ravel())
    return 1.0 - np.corrcoef(np.concatenate(a), np.concatenate(b))[0, 1]


@pytest.mark.parametrize("batch_dim", [1, "batch"])
def test_reference_compat_reproduces_reference_drop_exactly(repo, batch_dim):
    fp32 = _conv_metric(repo / "metric.onnx", batch_dim)
    cal = {"frame": np.random.default_rng(1).random((24, 1, 12, 12), dtype=np.float32)}
    quantize_static(fp32, cal)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "metric", "onnx": "metric.onnx", "quant_mode": "static", "quant_calibration_set": "unused.npz"}],
    )
    results = run_gate(reg, reference_compat=True).to_json()
    row = results["models"][0]
    assert row["status"] in ("pass", "fail"), row["reason"]
    expected = _reference_drop(fp32, repo / "metric.int8.onnx")
    assert expected > 0  # the int8 file really differs, so equality below means something
    assert row["drop"] == expected
    assert [i["shape"] for i in row["inputs"]] == [[1, 1, 12, 12]]
    assert row["samples"] == 16 and row["sampling"]["mode"] == "fixed"
    # the reference method judged the drop alone, by its point estimate (16 samples decide nothing)
    assert row["budgets"] == {"drop": 0.01} and row["marginal"] and row["on_marginal"] == "pass"
    assert row["status"] == ("pass" if expected <= 0.01 else "fail")
    assert {
        k: results["settings"][k] for k in ("samples", "seed", "reference_compat", "symbolic_dim_default", "selection")
    } == {"samples": None, "seed": 0, "reference_compat": True, "symbolic_dim_default": 1, "selection": []}
    # by default the gate samples until the figure can be trusted: more samples, another figure
    default = run_gate(reg).to_json()["models"][0]
    assert default["samples"] > 16 and default["drop"] != expected
