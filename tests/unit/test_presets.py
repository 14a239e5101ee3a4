"""Producer defaults and CPU presets: what the dynamic sidecar of an encoder quantises, what it
refuses, and that every preset holds the settings docs/cli.md documents."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modelzoo
from conftest import REPO
from quantgate.errors import UserError
from quantgate.int8_ops import quantized_op_types, saturation_risk
from quantgate.onnxio import session
from quantgate.produce.config import (
    DYNAMIC_DEFAULT_OPS,
    PRESETS,
    QuantConfig,
    cpu_independent,
    detect,
    preset,
    resolve,
)
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.produce.static import quantize_static

VOCAB, DIM, SEQ = 300, 32, 8


def _init(rng, shape, name):
    return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name)


def encoder_like(tmp_path, name="enc"):
    """ids int64 [1, SEQ] -> Gather(table [VOCAB, DIM]) + Gather(1-D bias lookup) -> MatMul ->
    Relu -> MatMul -> mean over tokens -> y [1, DIM]; plus a Shape -> Gather that reads no
    initialiser. The unnamed 1-D lookup is not a weight table and must stay float."""
    rng = np.random.default_rng(0)
    inits = [
        _init(rng, (VOCAB, DIM), "table"),
        _init(rng, (VOCAB,), "token_bias"),
        _init(rng, (DIM, 4 * DIM), "W1"),
        _init(rng, (4 * DIM, DIM), "W2"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0, name="embed"),
        helper.make_node("Gather", ["token_bias", "ids"], ["tb"], axis=0),
        helper.make_node("Unsqueeze", ["tb", "minus1"], ["tb3"]),
        helper.make_node("Add", ["emb", "tb3"], ["x"]),
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="up"),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("MatMul", ["hr", "W2"], ["o"], name="down"),
        helper.make_node("Shape", ["o"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["seq_len"], axis=0),
        helper.make_node("ReduceMean", ["o"], ["y"], axes=[1], keepdims=0),
    ]
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "minus1"))
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, SEQ])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, DIM]),
            helper.make_tensor_value_info("seq_len", TensorProto.INT64, []),
        ],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, path)
    return path


def conv_net(tmp_path, *, with_matmul=False, name="conv"):
    """x [1,1,8,8] -> Conv 3x3 -> Relu (-> Flatten -> MatMul) -> y."""
    rng = np.random.default_rng(1)
    inits = [_init(rng, (4, 1, 3, 3), "K"), _init(rng, (4,), "C")]
    nodes = [
        helper.make_node("Conv", ["x", "K", "C"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r" if with_matmul else "y"]),
    ]
    out = [1, 4, 8, 8]
    if with_matmul:
        inits.append(_init(rng, (256, 3), "W"))
        nodes += [helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
        out = [1, 3]
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, path)
    return path


def _ids(seed=0):
    return {"ids": np.random.default_rng(seed).integers(0, VOCAB, (1, SEQ), dtype=np.int64)}


def test_encoder_dynamic_sidecar_quantises_its_embedding(tmp_path):
    fp32 = encoder_like(tmp_path)
    r = quantize_dynamic(fp32, tmp_path / "enc.int8.onnx")
    q = onnx.load(str(r.output))
    inits = {t.name: t for t in q.graph.initializer}
    embed = next(n for n in q.graph.node if n.op_type == "Gather" and n.name == "embed")
    table = inits[embed.input[0]]
    assert table.data_type in (TensorProto.UINT8, TensorProto.INT8), "the embedding table is stored in 8 bits"
    assert list(table.dims) == [VOCAB, DIM]
    consumers = [n.op_type for n in q.graph.node if embed.output[0] in n.input]
    assert consumers == ["DequantizeLinear"], "gathered rows are dequantised for the float ops after them"
    assert "table" not in inits, "no float copy of the table is left"
    assert r.quantized_ops == {"Gather": 1, "MatMulInteger": 2}
    assert quantized_op_types(q) == r.quantized_ops
    assert r.details["gather_tables"] == ["table"]
    assert r.int8_bytes < r.fp32_bytes / 3

    # the 1-D lookup is not a weight table and the Shape Gather reads no initialiser: both stay as they were
    lookup = next(n for n in q.graph.node if n.op_type == "Gather" and "tb" in n.output)
    assert inits[lookup.input[0]].data_type == TensorProto.FLOAT
    assert any(n.op_type == "Gather" and n.input[0] == "shape" for n in q.graph.node)

    feed = _ids()
    want = session(fp32).run(None, feed)[0].ravel()
    got = session(r.output).run(None, feed)[0].ravel()
    assert np.corrcoef(want, got)[0, 1] > 0.99


def test_default_dynamic_sidecar_computes_the_same_on_every_x86_cpu(tmp_path):
    fp32 = encoder_like(tmp_path)
    q = onnx.load(str(quantize_dynamic(fp32, tmp_path / "d.onnx").output))
    assert not saturation_risk(q), "7-bit weights: no u8 x s8 pair can saturate on AVX2"
    vnni = quantize_dynamic(fp32, tmp_path / "v.onnx", config=preset("avx512_vnni", "dynamic"))
    risk = saturation_risk(onnx.load(str(vnni.output)))
    assert risk and risk.max_abs_weight > 64, "the VNNI preset's full-range weights are flagged"


def test_op_types_without_gather_keep_the_table_float(tmp_path):
    fp32 = encoder_like(tmp_path)
    r = quantize_dynamic(fp32, tmp_path / "mm.onnx", config=QuantConfig(reduce_range=True, op_types=("MatMul",)))
    inits = {t.name: t for t in onnx.load(str(r.output)).graph.initializer}
    assert inits["table"].data_type == TensorProto.FLOAT
    assert r.quantized_ops == {"MatMulInteger": 2}


def test_conv_model_is_refused_by_dynamic_ptq(tmp_path):
    with pytest.raises(UserError, match="ptq-static"):
        quantize_dynamic(conv_net(tmp_path), tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()


def test_conv_with_a_head_keeps_its_conv_float(tmp_path):
    r = quantize_dynamic(conv_net(tmp_path, with_matmul=True), tmp_path / "ch.onnx")
    ops = [n.op_type for n in onnx.load(str(r.output)).graph.node]
    assert "ConvInteger" not in ops and "Conv" in ops
    assert r.quantized_ops == {"MatMulInteger": 1}


# The presets table of docs/cli.md, as settings: (per_channel, activations, weights, 7-bit, format).
DOCUMENTED = {
    "default": {
        "dynamic": (True, "quint8", "qint8", True),
        "static": (True, "quint8", "quint8", False),
        "cpu_independent": True,
    },
    "avx2": {
        "dynamic": (True, "quint8", "qint8", True),
        "static": (False, "quint8", "qint8", True),
        "cpu_independent": True,
    },
    "avx512_vnni": {
        "dynamic": (True, "quint8", "qint8", False),
        "static": (True, "quint8", "qint8", False),
        "cpu_independent": False,
    },
    "arm64": {
        "dynamic": (True, "quint8", "qint8", False),
        "static": (False, "qint8", "qint8", False),
        "cpu_independent": False,
    },
}


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_each_preset_holds_the_documented_settings(name):
    p = PRESETS[name]
    for mode in ("dynamic", "static"):
        c = preset(name, mode)
        assert (c.per_channel, c.activation_type, c.weight_type, c.reduce_range) == DOCUMENTED[name][mode], mode
        assert c.quant_format == "qdq" and not c.preprocess and c.op_types is None, "mode defaults apply"
    assert p.cpu_independent is DOCUMENTED[name]["cpu_independent"]
    # CPU-independent exactly when no u8/s8 x s8 product can use weights beyond 7 bits
    same = all(c.weight_type == "quint8" or c.reduce_range for c in (p.dynamic, p.static))
    assert p.cpu_independent is same is all(cpu_independent(c) for c in (p.dynamic, p.static))
    if not p.cpu_independent:
        assert "NOT CPU-independent" in p.description
    row = next(ln for ln in (REPO / "docs" / "cli.md").read_text().splitlines() if ln.startswith(f"| `{name}` |"))
    assert ("yes" if p.cpu_independent else "no") in row.split("|")[-2], row


def test_presets_are_the_documented_set_and_auto():
    assert set(PRESETS) == set(DOCUMENTED)
    assert DYNAMIC_DEFAULT_OPS == ("MatMul", "Gemm", "Gather")
    with pytest.raises(UserError, match="auto"):
        preset("nope", "dynamic")


def _cpu(arch="x86_64", features=()):
    return {"arch": arch, "int8_features": list(features)}


@pytest.mark.parametrize(
    "cpu, kernels, want",
    [
        (_cpu("aarch64", ["dotprod"]), {"u8s8": "exact", "family": "arm64 dotprod"}, "arm64"),
        (_cpu(features=["avx2"]), {"u8s8": "saturating", "family": "avx2 (16-bit pair sums)"}, "avx2"),
        (_cpu(features=["avx2", "avx512bw"]), {"u8s8": "saturating", "family": "avx512bw (16-bit pair sums)"}, "avx2"),
        (_cpu(features=["avx2", "avx512_vnni"]), {"u8s8": "exact", "family": "avx512_vnni"}, "avx512_vnni"),
        (_cpu(features=["avx2", "avx_vnni"]), {"u8s8": "exact", "family": "avx_vnni"}, "avx512_vnni"),
        (_cpu(features=["amx_int8", "avx512_vnni"]), {"u8s8": "exact", "family": "amx"}, "avx512_vnni"),
        (_cpu(features=[]), {"u8s8": "exact", "family": "exact (no 16-bit pair-sum path)"}, "default"),
        (_cpu(features=["avx2"]), {"u8s8": "unknown", "family": "unknown"}, "default"),
        (_cpu("riscv64"), {"u8s8": "unknown", "family": "unknown"}, "default"),
    ],
)
def test_auto_picks_a_preset_from_the_cpu(cpu, kernels, want):
    name, why = detect(cpu, kernels)
    assert name == want and why


def test_auto_resolves_to_this_machines_preset():
    chosen, why = resolve("auto")
    assert chosen.name == detect()[0] and why
    assert resolve("default") == (PRESETS["default"], None)


def test_explicit_options_override_a_preset():
    c = preset("avx512_vnni", "dynamic").with_options(reduce_range=True, per_channel=False, weight_type=None)
    assert (c.reduce_range, c.per_channel, c.weight_type) == (True, False, "qint8")
    with pytest.raises(UserError, match="qoperator"):
        preset("default", "static").with_options(quant_format="qlinear")


def test_preprocess_and_qoperator_static(tmp_path):
    fp32 = conv_net(tmp_path, with_matmul=True)
    cal = {"x": np.random.default_rng(0).random((4, 1, 1, 8, 8), dtype=np.float32)}
    qop = quantize_static(fp32, cal, tmp_path / "qop.onnx", config=QuantConfig(quant_format="qoperator"))
    assert "QLinearConv" in qop.quantized_ops and qop.config["quant_format"] == "qoperator"
    pre = quantize_static(fp32, cal, tmp_path / "pre.onnx", config=QuantConfig(preprocess=True))
    assert pre.config["preprocess"] and pre.quantized_ops
    dyn = quantize_dynamic(encoder_like(tmp_path), tmp_path / "dp.onnx", config=QuantConfig(preprocess=True))
    assert dyn.config["preprocess"] and dyn.quantized_ops.get("Gather") == 1


def test_preprocess_falls_back_without_symbolic_shapes_and_leaves_no_dump(tmp_path, monkeypatch):
    import onnxruntime.quantization.shape_inference as si

    real = si.quant_pre_process

    def flaky(src, out, **kw):
        if not kw.get("skip_symbolic_shape"):
            (Path.cwd() / "sym_shape_infer_temp.onnx").write_bytes(b"dump")  # what ONNX Runtime does
            raise Exception("Incomplete symbolic shape inference")
        return real(src, out, **kw)

    monkeypatch.setattr(si, "quant_pre_process", flaky)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    r = quantize_dynamic(encoder_like(tmp_path), tmp_path / "fb.onnx", config=QuantConfig(preprocess=True))
    assert r.details["preprocess"]["symbolic_shape_inference"] is False
    assert r.quantized_ops.get("Gather") == 1
    assert list(work.iterdir()) == [], "the dump stays in the scratch folder"


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("weight_type", "int4", "weight_type: unknown 'int4'; use one of quint8, qint8"),
        ("activation_type", "u8", "activation_type: unknown 'u8'; use one of quint8, qint8"),
        ("method", "mse", "method: unknown 'mse'; use one of minmax, entropy, percentile"),
        ("quant_format", "qdq2", "quant_format: unknown 'qdq2'; use one of qdq, qoperator"),
        ("percentile", 0, "percentile: 0 is not a percentile; give a number in (0, 100]"),
        ("per_channel", "yes", "per_channel: 'yes' is not true or false"),
        ("op_types", "MatMul", "op_types: 'MatMul' is not a list of names"),
    ],
)
def test_a_config_made_through_the_api_is_checked_as_the_cli_checks_it(field, value, said):
    """QuantConfig checks itself: a caller of the library gets the CLI's one line naming the
    field, never a KeyError from deep inside a producer."""
    with pytest.raises(UserError) as err:
        QuantConfig(**{field: value})
    assert str(err.value) == said
    with pytest.raises(UserError):
        QuantConfig().with_options(**{field: value})


def test_dynamic_ptq_applies_the_extra_options_it_records(tmp_path):
    """`extra` reaches onnxruntime's dynamic quantiser (asymmetric weights change the file) and is
    recorded; what dynamic PTQ does not use is recorded as None; an option it sets itself is
    refused rather than silently overridden."""
    fp32 = modelzoo.mlp(tmp_path)
    plain_ = quantize_dynamic(fp32, tmp_path / "a.onnx", config=QuantConfig(reduce_range=True))
    asym = quantize_dynamic(
        fp32, tmp_path / "b.onnx", config=QuantConfig(reduce_range=True, extra={"WeightSymmetric": False})
    )
    assert (tmp_path / "a.onnx").read_bytes() != (tmp_path / "b.onnx").read_bytes()
    assert asym.report["config"]["extra"] == {"WeightSymmetric": False} and plain_.report["config"]["extra"] == {}
    c = asym.report["config"]
    assert (c["activation_type"], c["percentile"], c["method"], c["quant_format"]) == (None, None, None, "qoperator")
    with pytest.raises(UserError, match="MatMulConstBOnly is set by dynamic PTQ itself"):
        quantize_dynamic(fp32, tmp_path / "c.onnx", config=QuantConfig(extra={"MatMulConstBOnly": False}))
