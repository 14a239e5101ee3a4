"""A zoo of small, often hostile ONNX models built by code for tests (no torch, no downloads).

Every builder is `(tmp_dir: Path, ...) -> Path`: it writes one model into `tmp_dir` and returns
its path. Weights come from `numpy.random.default_rng(seed)`, so the same call writes the same
bytes. All models (except `corrupt`) pass `onnx.checker` and run in ONNX Runtime on CPU; the
docstring of each says what makes it awkward for a quantiser or a gate.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what torch's exporter writes for opset 17; loads in every supported ORT

__all__ = [
    "STALE_ERROR",
    "big_mlp",
    "constant_output",
    "conv_padded",
    "conv_symbolic",
    "corrupt",
    "external_data",
    "fp16_input",
    "int8_standin",
    "int_input",
    "mlp",
    "multi_output",
    "outlier_layer_mlp",
    "slowed",
    "stale_value_info",
    "tiny",
    "two_inputs",
    "write_npz",
]

# The message onnx shape inference raises (through onnxruntime.quantization) on stale_value_info.
STALE_ERROR = "Inferred shape and existing shape differ"


def _weights(rng: np.random.Generator, shape: tuple[int, ...], name: str, dtype=np.float32) -> onnx.TensorProto:
    fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
    arr = (rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))).astype(dtype)
    return numpy_helper.from_array(arr, name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="quantgate-tests-modelzoo",
    )
    onnx.checker.check_model(m)
    return m


def _save(m: onnx.ModelProto, tmp_dir: Path, name: str) -> Path:
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"{name}.onnx"
    onnx.save(m, path)
    return path


def _f32(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _mlp_graph(
    rng: np.random.Generator, sizes: list[int], name: str, in_name: str = "x", out_name: str = "y"
) -> onnx.GraphProto:
    """MatMul/Add layers with Relu between them; input [1, sizes[0]], output [1, sizes[-1]]."""
    nodes, inits, cur = [], [], in_name
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        inits += [_weights(rng, (a, b), f"W{i}"), _weights(rng, (b,), f"B{i}")]
        nodes.append(helper.make_node("MatMul", [cur, f"W{i}"], [f"mm{i}"]))
        added = out_name if last else f"add{i}"
        nodes.append(helper.make_node("Add", [f"mm{i}", f"B{i}"], [added]))
        if not last:
            nodes.append(helper.make_node("Relu", [added], [f"relu{i}"]))
            cur = f"relu{i}"
    return helper.make_graph(nodes, name, [_f32(in_name, [1, sizes[0]])], [_f32(out_name, [1, sizes[-1]])], inits)


def mlp(tmp_dir: Path, name: str = "mlp", seed: int = 0) -> Path:
    """x float32 [1,8] -> MatMul/Add/Relu/MatMul/Add -> y float32 [1,4]. The plain case."""
    rng = np.random.default_rng(seed)
    return _save(_model(_mlp_graph(rng, [8, 16, 4], name)), tmp_dir, name)


def outlier_layer_mlp(tmp_dir: Path, name: str = "outlier_layer_mlp", seed: int = 0, gain: float = 200.0) -> Path:
    """x float32 [N,16] -> four MatMul/Add layers (16 -> 64 -> 64 -> 64 -> 1, Relu between) ->
    y [N,1]; nodes named layer0..layer3. In layer1 every output column has one weight `gain`
    times the others, so its per-channel scale crushes the rest of the column: quantising layer1
    costs far more than any other layer, and keeping it alone in float (4,096 of 9,280 weights)
    leaves 56 % of the weights in int8."""
    rng = np.random.default_rng(seed)
    sizes = [16, 64, 64, 64, 1]
    nodes, inits, cur = [], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        if i == 1:
            w[rng.integers(0, a, size=b), np.arange(b)] *= np.float32(gain)
        inits += [numpy_helper.from_array(w, f"W{i}"), _weights(rng, (b,), f"B{i}")]
        nodes.append(helper.make_node("MatMul", [cur, f"W{i}"], [f"mm{i}"], name=f"layer{i}"))
        out = "y" if i == len(sizes) - 2 else f"add{i}"
        nodes.append(helper.make_node("Add", [f"mm{i}", f"B{i}"], [out], name=f"bias{i}"))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"relu{i}"], name=f"relu{i}"))
            cur = f"relu{i}"
    g = helper.make_graph(nodes, name, [_f32("x", ["N", 16])], [_f32("y", ["N", 1])], inits)
    return _save(_model(g), tmp_dir, name)


def conv_symbolic(tmp_dir: Path, name: str = "conv_symbolic", seed: int = 0) -> Path:
    """image float32 [N,1,H,W] (all symbolic) -> Conv3x3/Relu/Conv3x3, no padding -> out
    [N,1,H-4,W-4]. Fails to run when H or W < 5, e.g. when a gate turns every symbol into 1."""
    rng = np.random.default_rng(seed)
    inits = [
        _weights(rng, (4, 1, 3, 3), "K1"),
        _weights(rng, (4,), "C1"),
        _weights(rng, (1, 4, 3, 3), "K2"),
        _weights(rng, (1,), "C2"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "K1", "C1"], ["conv1"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("Conv", ["relu1", "K2", "C2"], ["out"], kernel_shape=[3, 3]),
    ]
    g = helper.make_graph(
        nodes, name, [_f32("image", ["N", 1, "H", "W"])], [_f32("out", ["N", 1, "H_out", "W_out"])], inits
    )
    return _save(_model(g), tmp_dir, name)


def conv_padded(tmp_dir: Path, name: str = "conv_padded", seed: int = 0) -> Path:
    """image float32 [N,1,H,W] (all symbolic) -> Conv3x3 with padding 1 -> Relu -> out [N,1,H,W]:
    runs at any size, H = W = 1 included."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, (1, 1, 3, 3), "K"), _weights(rng, (1,), "C")]
    nodes = [
        helper.make_node("Conv", ["image", "K", "C"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["out"]),
    ]
    g = helper.make_graph(nodes, name, [_f32("image", ["N", 1, "H", "W"])], [_f32("out", ["N", 1, "H", "W"])], inits)
    return _save(_model(g), tmp_dir, name)


def two_inputs(tmp_dir: Path, name: str = "two_inputs", seed: int = 0) -> Path:
    """a, b float32 [1,8] -> MatMul(a,Wa) + MatMul(b,Wb) -> y [1,4]. Feeding only the first
    input is not enough."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, (8, 4), "Wa"), _weights(rng, (8, 4), "Wb")]
    nodes = [
        helper.make_node("MatMul", ["a", "Wa"], ["ma"]),
        helper.make_node("MatMul", ["b", "Wb"], ["mb"]),
        helper.make_node("Add", ["ma", "mb"], ["y"]),
    ]
    g = helper.make_graph(nodes, name, [_f32("a", [1, 8]), _f32("b", [1, 8])], [_f32("y", [1, 4])], inits)
    return _save(_model(g), tmp_dir, name)


def scalar_input(tmp_dir: Path, name: str = "scalar_input", seed: int = 0) -> Path:
    """x float32 [1,8] and gain float32 [] (a 0-d input) -> MatMul(x,W) * gain -> y [1,4]. A set
    holds the scalar as a [N] array; sample i of it is a 0-d array, not a numpy scalar."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Mul", ["m", "gain"], ["y"])]
    g = helper.make_graph(
        nodes, name, [_f32("x", [1, 8]), _f32("gain", [])], [_f32("y", [1, 4])], [_weights(rng, (8, 4), "W")]
    )
    return _save(_model(g), tmp_dir, name)


def fp16_input(tmp_dir: Path, name: str = "fp16_input", seed: int = 0) -> Path:
    """x float16 [1,8] -> MatMul/Add with float16 weights -> y float16 [1,4]. Feeding float32
    fails; ORT's quantisers only handle float32 models."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, (8, 4), "W", np.float16), _weights(rng, (4,), "B", np.float16)]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"]), helper.make_node("Add", ["mm", "B"], ["y"])]
    f16 = TensorProto.FLOAT16
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", f16, [1, 8])],
        [helper.make_tensor_value_info("y", f16, [1, 4])],
        inits,
    )
    return _save(_model(g), tmp_dir, name)


def int_input(tmp_dir: Path, name: str = "int_input", seed: int = 0, vocab: int = 50, seq: int = 6) -> Path:
    """ids int64 [1,seq] (token ids < vocab) -> Gather(embedding [vocab,16]) -> ReduceMean over
    tokens -> MatMul -> y float32 [1,4]. Uniform float inputs are meaningless here and ids >=
    vocab make Gather fail."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, (vocab, 16), "embedding"), _weights(rng, (16, 4), "W")]
    nodes = [
        helper.make_node("Gather", ["embedding", "ids"], ["emb"], axis=0),
        helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "W"], ["y"]),
    ]
    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, seq])], [_f32("y", [1, 4])], inits
    )
    return _save(_model(g), tmp_dir, name)


def multi_output(tmp_dir: Path, name: str = "multi_output", seed: int = 0) -> Path:
    """x float32 [1,8] -> y1 [1,4] (linear) and y2 [1,2] (Relu of another linear). Comparing
    only the first output misses the second."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, (8, 4), "W1"), _weights(rng, (8, 2), "W2"), _weights(rng, (2,), "B2")]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["y1"]),
        helper.make_node("MatMul", ["x", "W2"], ["m2"]),
        helper.make_node("Add", ["m2", "B2"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["y2"]),
    ]
    g = helper.make_graph(nodes, name, [_f32("x", [1, 8])], [_f32("y1", [1, 4]), _f32("y2", [1, 2])], inits)
    return _save(_model(g), tmp_dir, name)


def constant_output(tmp_dir: Path, name: str = "constant_output", seed: int = 0) -> Path:
    """x float32 [1,8] -> MatMul -> Mul by zeros -> Add constant -> y [1,4], the same for every
    input. PLCC of two constant vectors is NaN. x stays wired in so pruning keeps the signature."""
    rng = np.random.default_rng(seed)
    inits = [
        _weights(rng, (8, 4), "W"),
        numpy_helper.from_array(np.zeros((4,), np.float32), "zeros"),
        numpy_helper.from_array(np.array([0.5, -1.0, 2.0, 0.25], np.float32), "c"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["mm"]),
        helper.make_node("Mul", ["mm", "zeros"], ["zeroed"]),
        helper.make_node("Add", ["zeroed", "c"], ["y"]),
    ]
    g = helper.make_graph(nodes, name, [_f32("x", [1, 8])], [_f32("y", [1, 4])], inits)
    return _save(_model(g), tmp_dir, name)


def external_data(tmp_dir: Path, name: str = "external_data", seed: int = 0) -> Path:
    """The mlp with every initialiser stored in `<name>.onnx.data` beside the model; copying or
    quantising only the .onnx file loses the weights."""
    rng = np.random.default_rng(seed)
    m = _model(_mlp_graph(rng, [8, 16, 4], name))
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"{name}.onnx"
    data = tmp_dir / f"{name}.onnx.data"
    if data.exists():
        data.unlink()  # onnx appends to an existing data file; start clean
    onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data.name, size_threshold=0)
    return path


def stale_value_info(tmp_dir: Path, name: str = "stale_value_info", seed: int = 0) -> Path:
    """x float32 [1,128] -> MatMul(W [128,4]) -> Add -> y [1,4], with graph.value_info that lies:

    - `W` (an initialiser) is re-declared as [1,4]. onnx shape inference, which
      onnxruntime.quantization runs before quantising, raises
      `[ShapeInferenceError] Inferred shape and existing shape differ in dimension 0: (128) vs (1)`
      from quantize_dynamic and quantize_static (verified on onnxruntime 1.32.0, onnx 1.23.2).
    - `mm` (an intermediate) is recorded as [128,4], really [1,4]. On 1.32 this alone does not
      stop quantisation (only strict shape inference rejects it); ORT logs a "lenient merge"
      warning when it loads the model and runs it correctly.

    Removing the shadowing entry, or running
    onnxruntime.quantization.shape_inference.quant_pre_process first, lets quantisation succeed.
    """
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, (128, 4), "W"), _weights(rng, (4,), "B")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"]), helper.make_node("Add", ["mm", "B"], ["y"])]
    stale = [_f32("mm", [128, 4]), _f32("W", [1, 4])]
    g = helper.make_graph(nodes, name, [_f32("x", [1, 128])], [_f32("y", [1, 4])], inits, value_info=stale)
    # not through _model(): the checker is fine with it, but keep the lie out of any "fix-up"
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="quantgate-tests-modelzoo",
    )
    return _save(m, tmp_dir, name)


def big_mlp(tmp_dir: Path, name: str = "big_mlp", seed: int = 0, sizes: tuple[int, ...] = (512, 1024, 512, 16)) -> Path:
    """x float32 [1,512] -> 512->1024->512->16 MLP, about 4.2 MB of float32 weights."""
    rng = np.random.default_rng(seed)
    return _save(_model(_mlp_graph(rng, list(sizes), name)), tmp_dir, name)


def tiny(tmp_dir: Path, name: str = "tiny", seed: int = 0) -> Path:
    """x float32 [1,4] -> MatMul(4x4)/Add -> y [1,4]; a few hundred bytes, so any int8 form of
    it is larger than the fp32 file."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, (4, 4), "W"), _weights(rng, (4,), "B")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"]), helper.make_node("Add", ["mm", "B"], ["y"])]
    g = helper.make_graph(nodes, "t", [_f32("x", [1, 4])], [_f32("y", [1, 4])], inits)
    return _save(_model(g), tmp_dir, name)


def corrupt(tmp_dir: Path, name: str = "corrupt") -> Path:
    """A `.onnx` file whose bytes are not a protobuf ('N' opens a field with the invalid wire
    type 6, so parsing fails at the first byte)."""
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"{name}.onnx"
    path.write_bytes(b"NOT AN ONNX MODEL\n\x00\xff\xfe garbage \x07\x07\x07\n")
    return path


def write_npz(path: Path, **arrays) -> Path:
    """np.savez with parents created; arrays keep their dtype (pass float32 for calibration sets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def int8_standin(fp32: Path, dst: Path | None = None, *, scale: float = 0.0, seed: int = 0) -> Path:
    """A stand-in int8 sidecar for any model, whatever its dtypes (quantisers handle float32
    graphs only): the same graph, its float weights nudged by `scale` x their mean magnitude,
    and its first float weight stored as int8 behind a DequantizeLinear, so the file holds a
    quantised operator as every int8 sidecar does. Written to `dst` (default <stem>.int8.onnx)."""
    m = onnx.load(str(fp32))
    rng = np.random.default_rng(seed)
    converted = False
    for t in list(m.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype.kind != "f":
            continue
        if scale:
            a = (a + scale * np.abs(a).mean() * rng.standard_normal(a.shape)).astype(a.dtype)
        if not converted and a.size > 1:
            name = t.name
            step = float(np.abs(a).max()) / 127 or 1.0
            q = np.clip(np.round(a.astype(np.float64) / step), -127, 127).astype(np.int8)
            t.CopyFrom(numpy_helper.from_array(q, name + "_q"))
            m.graph.initializer.append(numpy_helper.from_array(np.array(step, a.dtype), name + "_scale"))
            m.graph.node.insert(0, helper.make_node("DequantizeLinear", [name + "_q", name + "_scale"], [name]))
            converted = True
            if a.dtype == np.float16:  # a float16 scale needs DequantizeLinear-19
                for op in m.opset_import:
                    if op.domain in ("", "ai.onnx") and op.version < 19:
                        op.version = 19
                m.ir_version = max(m.ir_version, 9)
        else:
            t.CopyFrom(numpy_helper.from_array(a, t.name))
    if not converted:
        raise ValueError(f"{fp32}: no float weight to store as int8")
    dst = dst or fp32.with_name(fp32.name[:-5] + ".int8.onnx")
    onnx.save(m, str(dst))
    return dst


def slowed(
    src: Path, dst: Path, *, width: int = 384, depth: int = 6, last_dim: int | None = None, seed: int = 0
) -> Path:
    """`src` with busywork that changes no output value: its first (float32) input goes through
    `depth` MatMuls of width `width` (they depend on the input, so no constant folding removes
    them), whose sum, times 0, is added to the first output. Same signature, same figures,
    measurably slower. `last_dim`: the input's last dimension when it is symbolic."""
    m = onnx.load(str(src))
    g = m.graph
    rng = np.random.default_rng(seed)
    x = g.input[0].name
    k = last_dim or g.input[0].type.tensor_type.shape.dim[-1].dim_value
    out = g.output[0].name
    raw = "busy_raw_out"
    for node in g.node:  # the first output is now written to `raw`
        node.output[:] = [raw if o == out else o for o in node.output]
    cur = x
    for i in range(depth):
        shape = (k if i == 0 else width, width)
        w = numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), f"busy_w{i}")
        g.initializer.append(w)
        g.node.append(helper.make_node("MatMul", [cur, w.name], [f"busy_{i}"]))
        cur = f"busy_{i}"
    g.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), "busy_zero"))
    g.node.extend(
        [
            helper.make_node("ReduceSum", [cur], ["busy_sum"], keepdims=0),
            helper.make_node("Mul", ["busy_sum", "busy_zero"], ["busy_nothing"]),
            helper.make_node("Add", [raw, "busy_nothing"], [out]),
        ]
    )
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst


def hanging(tmp_dir: Path, name: str = "hanging") -> Path:
    """A model that never returns: a Loop of 2^62 iterations adding 1 to its input ([1] -> [1]).
    Its sidecar (<stem>.int8.onnx) quantises the input first, so it holds a quantised operator."""

    def build(quantise: bool) -> onnx.ModelProto:
        body = helper.make_graph(
            [
                helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                helper.make_node("Add", ["v_in", "one"], ["v_out"]),
            ],
            "body",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                _f32("v_in", [1]),
            ],
            [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _f32("v_out", [1])],
            [numpy_helper.from_array(np.ones(1, np.float32), "one")],
        )
        inits = [
            numpy_helper.from_array(np.array(2**62, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "go"),
        ]
        nodes, src = [], "x"
        if quantise:
            inits += [
                numpy_helper.from_array(np.array(0.01, np.float32), "s"),
                numpy_helper.from_array(np.array(0, np.uint8), "z"),
            ]
            nodes += [
                helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
            ]
            src = "xd"
        nodes.append(helper.make_node("Loop", ["trips", "go", src], ["y"], body=body))
        return _model(helper.make_graph(nodes, name, [_f32("x", [1])], [_f32("y", [1])], inits))

    path = _save(build(False), tmp_dir, name)
    onnx.save(build(True), str(path.with_name(f"{name}.int8.onnx")))
    return path


def variable_length(tmp_dir: Path, name: str = "variable_length", threshold: float = 0.9) -> Path:
    """An output whose length varies by sample: the values of x [16] above `threshold` (none, some,
    or all of them). Its sidecar (<stem>.int8.onnx) quantises x first (a quantised operator)."""

    def build(quantise: bool) -> onnx.ModelProto:
        inits = [numpy_helper.from_array(np.array(threshold, np.float32), "cut")]
        nodes, src = [], "x"
        if quantise:
            inits += [
                numpy_helper.from_array(np.array(1 / 255, np.float32), "s"),
                numpy_helper.from_array(np.array(0, np.uint8), "z"),
            ]
            nodes += [
                helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
            ]
            src = "xd"
        nodes += [
            helper.make_node("Greater", ["x", "cut"], ["keep"]),
            helper.make_node("Compress", [src, "keep"], ["y"], axis=0),
        ]
        return _model(helper.make_graph(nodes, name, [_f32("x", [16])], [_f32("y", ["kept"])], inits))

    path = _save(build(False), tmp_dir, name)
    onnx.save(build(True), str(path.with_name(f"{name}.int8.onnx")))
    return path
