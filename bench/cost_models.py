"""Models like the first user's registry, built (seeded) for bench/gate_cost.py:

- `nr_metric_224`: a no-reference conv metric, frame [batch, 1, 224, 224] -> score [batch, 1]
  (four strided 3x3 convs, global average pool, a MatMul head); its int8 sidecar made by ONNX
  Runtime's `quantize_dynamic` on Conv and MatMul with full-range s8 weights (as that project's
  own tooling made it): its drop, about 0.02, is well over a 0.01 budget;
- `filter_224`: a residual conv filter, frame [1, 1, 224, 224] -> filtered [1, 1, 224, 224]
  (50,176 output values a sample); dynamic int8 `ConvInteger`, several times slower than fp32;
- `mlp_a`, `mlp_b`: MLP regressors 6 -> 32 -> 32 -> 1 and 8 -> 64 -> 64 -> 1, dynamic PTQ by
  quantgate's default.

    python bench/cost_models.py OUT_DIR     # writes the models and OUT_DIR/registry.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def _w(rng, shape, name, scale=1.0):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
    return numpy_helper.from_array((scale * rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)


def nr_metric(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    inits, nodes, cur, ch = [], [], "frame", 1
    for i, out_ch in enumerate((8, 16, 16, 32)):
        # the last layer's features sit on an offset (0.5): dynamic per-tensor activation scales
        # spend their range on it, and the int8 score drops about 0.02 (the first user's 0.021)
        bias = np.full(out_ch, 0.5 if i == 3 else 0.0, np.float32)
        inits += [_w(rng, (out_ch, ch, 3, 3), f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
        nodes += [
            helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        cur, ch = f"r{i}", out_ch
    inits.append(_w(rng, (ch, 1), "head", scale=4.0))
    nodes += [
        helper.make_node("GlobalAveragePool", [cur], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "head"], ["score"]),
    ]
    g = helper.make_graph(
        nodes,
        "nr_metric_224",
        [helper.make_tensor_value_info("frame", TensorProto.FLOAT, ["batch", 1, 224, 224])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    return _save(g, path)


def conv_filter(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    inits, nodes, cur, ch = [], [], "frame", 1
    for i, out_ch in enumerate((16, 16, 1)):
        inits += [
            _w(rng, (out_ch, ch, 3, 3), f"w{i}", 0.5),
            numpy_helper.from_array(np.zeros(out_ch, np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        if out_ch != 1:
            nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
            cur = f"r{i}"
        else:
            cur = f"c{i}"
        ch = out_ch
    nodes.append(helper.make_node("Add", ["frame", cur], ["filtered"]))
    shape = [1, 1, 224, 224]
    g = helper.make_graph(
        nodes,
        "filter_224",
        [helper.make_tensor_value_info("frame", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("filtered", TensorProto.FLOAT, shape)],
        inits,
    )
    return _save(g, path)


def mlp(path: Path, sizes: tuple[int, ...], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    inits, nodes, cur = [], [], "features"
    for i in range(len(sizes) - 1):
        inits += [
            _w(rng, (sizes[i], sizes[i + 1]), f"w{i}"),
            numpy_helper.from_array(np.zeros(sizes[i + 1], np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
        ]
        cur = f"a{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Tanh", [cur], [f"t{i}"]))
            cur = f"t{i}"
    nodes.append(helper.make_node("Identity", [cur], ["score"]))
    g = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits,
    )
    return _save(g, path)


def _ort_dynamic(fp32: Path, op_types: list[str]) -> Path:
    """The sidecar as ONNX Runtime's own `quantize_dynamic` makes it (no quantgate stamp)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = fp32.with_name(fp32.stem + ".int8.onnx")
    with tempfile.TemporaryDirectory() as tmp:  # it writes scratch files beside its input
        src = Path(tmp) / fp32.name
        src.write_bytes(fp32.read_bytes())
        quantize_dynamic(str(src), str(out), op_types_to_quantize=op_types, weight_type=QuantType.QInt8)
    return out


def build(out: Path) -> Path:
    """Write the four models, their sidecars and a registry; return the registry's path."""
    from quantgate.produce.dynamic import quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    nr = nr_metric(out / "nr_metric_224.onnx")
    _ort_dynamic(nr, ["Conv", "MatMul"])
    filt = conv_filter(out / "filter_224.onnx")
    _ort_dynamic(filt, ["Conv"])
    a = mlp(out / "mlp_a.onnx", (6, 32, 32, 1), seed=1)
    b = mlp(out / "mlp_b.onnx", (8, 64, 64, 1), seed=2)
    for m in (a, b):
        quantize_dynamic(m)
    entries = [
        {"id": "nr_metric_224", "onnx": nr.name, "quant_mode": "dynamic"},
        {"id": "filter_224", "onnx": filt.name, "quant_mode": "dynamic"},
        {"id": "mlp_a", "onnx": a.name, "quant_mode": "dynamic"},
        {"id": "mlp_b", "onnx": b.name, "quant_mode": "dynamic"},
    ]
    reg = out / "registry.json"
    reg.write_text(json.dumps({"schema_version": 1, "models": entries}, indent=2) + "\n")
    return reg


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
