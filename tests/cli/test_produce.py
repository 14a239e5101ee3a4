"""Producers on real models: outputs load and run, inputs stay untouched, mistakes are one line."""

import json

import numpy as np
import onnx
import pytest

import modelzoo
from conftest import REPO, assert_one_line_error, run_cli
from quantgate.onnxio import session
from quantgate.paths import sha256_file
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.produce.static import quantize_static


def _tree(d):
    return {p.name: sha256_file(p) for p in sorted(d.iterdir()) if p.is_file()}


def test_ptq_dynamic_cli_writes_sidecar_and_report_leaving_input_alone(repo):
    fp32 = modelzoo.mlp(repo)
    before = _tree(repo)
    proc = run_cli("ptq-dynamic", fp32, "--report-out", repo / "rep" / "dyn.json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    out = repo / "mlp.int8.onnx"
    after = _tree(repo)
    assert set(after) - set(before) == {"mlp.int8.onnx"}  # no scratch files left beside the model
    assert all(after[k] == v for k, v in before.items())
    rep = json.loads((repo / "rep" / "dyn.json").read_text())
    assert rep["fp32_bytes"] == fp32.stat().st_size and rep["int8_bytes"] == out.stat().st_size
    assert rep["size_ratio"] == pytest.approx(rep["int8_bytes"] / rep["fp32_bytes"], rel=1e-5)
    assert rep["config"]["per_channel"] is True and "MatMulInteger" in rep["quantized_op_types"]
    prov = rep["run_provenance"]
    assert prov["inputs"]["model"]["sha256"] == sha256_file(fp32)
    assert {"quantgate", "python", "onnx", "onnxruntime", "numpy"} <= set(prov["versions"])
    assert "ptq-dynamic" in " ".join(prov["command"]) and prov["utc"].endswith("+00:00")
    assert "int8_features" in prov["cpu"] and "dirty" in prov["git"]
    session(out).run(None, {"x": np.zeros((1, 8), np.float32)})
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["quantgate.source_sha256"] == sha256_file(fp32) and meta["quantgate.mode"] == "dynamic"


def test_per_channel_switch_changes_the_weights(repo):
    fp32 = modelzoo.mlp(repo)
    a = quantize_dynamic(fp32, repo / "pc.onnx")
    from quantgate.produce.config import QuantConfig

    b = quantize_dynamic(fp32, repo / "pt.onnx", config=QuantConfig(per_channel=False))
    assert a.config["per_channel"] and not b.config["per_channel"]
    assert sha256_file(a.output) != sha256_file(b.output)


def test_requantising_is_byte_identical(repo):
    fp32 = modelzoo.two_inputs(repo)
    cal = modelzoo.write_npz(repo / "cal.npz", **_cal_for(fp32, 16))
    a = quantize_static(fp32, cal, repo / "a.onnx")
    b = quantize_static(fp32, cal, repo / "b.onnx")
    assert sha256_file(a.output) == sha256_file(b.output)


def _cal_for(fp32, n, seed=0):
    rng = np.random.default_rng(seed)
    m = onnx.load(str(fp32))
    inits = {i.name for i in m.graph.initializer}
    out = {}
    for i in m.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
        out[i.name] = rng.random([n, *dims[1:]], dtype=np.float32)
    return out


@pytest.mark.parametrize(
    "model_id, mode",
    [
        ("conv_filter_v1", "static"),
        ("nr_metric_v1", "static"),
        ("two_input_v1", "static"),
        ("mlp_regressor_v1", "dynamic"),
        ("mlp_regressor_v1", "static"),
        ("outlier_mlp_v1", "static"),
        ("outlier_mlp_v1", "dynamic"),
    ],
)
def test_each_producer_on_each_shipped_model(tmp_path, model_id, mode):
    src = REPO / "model" / "tiny" / f"{model_id}.onnx"
    out = tmp_path / f"{model_id}.int8.onnx"
    if mode == "static":
        r = quantize_static(src, REPO / "model" / "tiny" / "calibration" / f"{model_id}.npz", out)
        assert r.details["calibration"]["samples"] >= 1
    else:
        r = quantize_dynamic(src, out)
    assert r.quantized_ops, "something must have been quantised"
    assert out.is_file() and onnx.load(str(out)).graph.node


def test_stale_value_info_model_quantises(repo):
    fp32 = modelzoo.stale_value_info(repo)
    r = quantize_dynamic(fp32)
    assert r.output.is_file()
    rep = r.report["preflight"]
    assert rep["dropped_value_info"] >= 1


def test_external_data_is_inlined_into_the_sidecar(repo):
    fp32 = modelzoo.external_data(repo)
    r = quantize_dynamic(fp32)
    m = onnx.load(str(r.output), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    assert r.report["preflight"]["inlined_external_data"] is True
    assert r.fp32_bytes > fp32.stat().st_size  # counts the .onnx.data file too


def test_big_and_tiny_models(repo):
    big = modelzoo.big_mlp(repo)
    r = quantize_dynamic(big)
    assert r.int8_bytes < r.fp32_bytes * 0.4  # int8 weights: about a quarter of the bytes
    tiny = modelzoo.tiny(repo)
    assert tiny.stat().st_size < 1000
    t = quantize_dynamic(tiny)  # a few hundred bytes: the quantisation parameters outweigh the weights
    assert t.output.is_file() and t.quantized_ops == {"MatMulInteger": 1} and t.int8_bytes > t.fp32_bytes


# --- user mistakes: one line, exit 2, nothing written --------------------------------------


def _static(repo, fp32, cal, *extra):
    return run_cli("ptq-static", fp32, "--calibration", cal, *extra, cwd=repo)


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        (lambda: {"wrong": np.zeros((4, 8), np.float32)}, "missing 'x'"),
        (lambda: {"x": np.zeros((4, 8), np.float64)}, "float64"),
        (lambda: {"x": np.zeros((4, 7), np.float32)}, "the model wants 8"),
        (lambda: {"x": np.zeros((0, 8), np.float32)}, "no samples"),
        (lambda: {"x": np.full((4, 8), np.nan, np.float32)}, "NaN/inf"),
        (lambda: {"x": np.zeros((4, 2, 3, 8), np.float32)}, "has 4 dims"),
    ],
)
def test_bad_calibration_sets(repo, arrays, fragment):
    fp32 = modelzoo.mlp(repo)
    cal = modelzoo.write_npz(repo / "cal.npz", **arrays())
    line = assert_one_line_error(_static(repo, fp32, cal), "cal.npz", fragment)
    assert "'x'" in line and "; " in line  # names the input (the field) and says what to do
    assert not (repo / "mlp.int8.onnx").exists()


def test_calibration_file_problems(repo):
    fp32 = modelzoo.mlp(repo)
    assert_one_line_error(_static(repo, fp32, repo / "none.npz"), "none.npz", "not found")
    (repo / "junk.npz").write_bytes(b"this is no zip file")
    assert_one_line_error(_static(repo, fp32, repo / "junk.npz"), "junk.npz", "not a readable .npz")
    np.save(repo / "one.npy", np.zeros((2, 8), np.float32))
    assert_one_line_error(_static(repo, fp32, repo / "one.npy"), "one.npy", "numpy.savez")
    obj = np.empty(2, dtype=object)
    np.savez(repo / "pickled.npz", x=obj)
    assert_one_line_error(_static(repo, fp32, repo / "pickled.npz"), "pickled.npz", "pickled")
    assert not (repo / "mlp.int8.onnx").exists()


def test_model_file_problems(repo):
    assert_one_line_error(run_cli("ptq-dynamic", repo / "nope.onnx", cwd=repo), "nope.onnx", "not found")
    bad = modelzoo.corrupt(repo)
    assert_one_line_error(run_cli("ptq-dynamic", bad, cwd=repo), bad.name, "not a readable ONNX")
    conv = modelzoo.conv_symbolic(repo)
    assert_one_line_error(run_cli("ptq-dynamic", conv, cwd=repo), "ptq-static")
    fp32 = modelzoo.mlp(repo)
    assert_one_line_error(run_cli("ptq-dynamic", fp32, "--output", fp32, cwd=repo), "overwrite")
    assert_one_line_error(
        run_cli("ptq-dynamic", fp32, "--output", "m.int8", cwd=repo),
        "--output m.int8: must end in .onnx; name it <something>.onnx",
    )
    assert_one_line_error(run_cli("ptq-static", fp32, cwd=repo), "--calibration")
    assert_one_line_error(run_cli("ptq-static", fp32, "-c", "x.npz", "--method", "nope", cwd=repo), "--method")
    assert_one_line_error(run_cli("ptq-dynamic", fp32, "--frobnicate", cwd=repo), "--frobnicate")
    half = modelzoo.fp16_input(repo)
    assert_one_line_error(run_cli("ptq-dynamic", half, cwd=repo), "float16 graph", "export the model in float32")
    assert not (repo / "fp16_input.int8.onnx").exists()


def test_missing_external_data_is_one_line(repo):
    fp32 = modelzoo.external_data(repo)
    for p in repo.iterdir():
        if p.suffix == ".data":
            p.unlink()
    assert_one_line_error(run_cli("ptq-dynamic", fp32, cwd=repo), "external file", "does not exist")


def test_registry_id_records_the_digest_and_refuses_a_wrong_target_before_writing(repo):
    """`--registry-id` edits only the digest; an id that is not there, another entry's model or a
    sidecar path the gate would not read is one line before anything is written."""
    fp32 = modelzoo.mlp(repo)
    reg = repo / "registry.json"
    rows = [
        {"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"},
        {"id": "st", "onnx": fp32.name, "quant_mode": "static", "quant_calibration_set": "c.npz"},
        {"id": "fp", "onnx": fp32.name},
    ]
    reg.write_text(json.dumps({"models": rows}, indent=2))
    before = reg.read_text()
    for args, fragment in (
        (["--registry-id", "nope"], "no model with id 'nope'"),
        (["--registry-id", "st"], "has quant_mode static, which ships the sidecar quantgate ptq-static makes"),
        (["--registry-id", "fp"], "has quant_mode fp32, which ships no int8 sidecar"),
        (["--registry-id", "mlp", "-o", repo / "elsewhere.int8.onnx"], "is gated against mlp.int8.onnx"),
    ):
        line = assert_one_line_error(run_cli("ptq-dynamic", fp32, "--registry", reg, *args, cwd=repo), fragment)
        assert str(reg) in line
        assert reg.read_text() == before
        assert not (repo / "mlp.int8.onnx").exists() and not (repo / "elsewhere.int8.onnx").exists()
    proc = run_cli("ptq-dynamic", fp32, "--registry", reg, "--registry-id", "mlp", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    digest = sha256_file(repo / "mlp.int8.onnx")
    assert digest in proc.stdout
    doc = json.loads(reg.read_text())
    assert doc["models"][0] == {**rows[0], "int8_sha256": digest} and doc["models"][1:] == rows[1:]
    gate = run_cli("gate", "mlp", "--registry", reg, cwd=repo)
    assert gate.returncode == 0, gate.stdout + gate.stderr


@pytest.mark.parametrize(
    "command, option, target, fragment",
    [
        ("ptq-dynamic", "--report-out", "registry.json", "is also this run's registry"),
        ("ptq-dynamic", "--report-out", "mlp.onnx", "named like a model or data file"),
        ("gate", "--json-out", "registry.json", "is also this run's registry"),
        ("gate", "--markdown-out", "mlp.int8.onnx", "named like a model or data file"),
    ],
)
def test_a_report_never_replaces_what_the_run_reads(repo, command, option, target, fragment):
    """A slip in a report option (the registry's path, a model's) is one line before any work,
    and every file is as it was."""
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = repo / "registry.json"
    reg.write_text(json.dumps({"models": [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}]}))
    before = _tree(repo)
    args = ["mlp"] if command == "gate" else [fp32, "-o", repo / "out.int8.onnx"]
    proc = run_cli(command, *args, "--registry", reg, option, repo / target, cwd=repo)
    assert_one_line_error(proc, f"{option} {repo / target}", fragment)
    assert _tree(repo) == before


def test_a_scalar_input_calibrates_and_gates_from_sets(repo):
    """A 0-d input: its calibration and eval sets hold it as [N]; each sample feeds a 0-d array."""
    from quantgate.gate import run_gate

    fp32 = modelzoo.scalar_input(repo)
    rng = np.random.default_rng(0)
    arrays = {"x": rng.random((40, 1, 8), dtype=np.float32), "gain": rng.random(40, dtype=np.float32) + 0.5}
    cal = modelzoo.write_npz(repo / "cal.npz", **arrays)
    r = quantize_static(fp32, cal)
    assert r.report["quantized_op_types"].get("MatMul") == 1
    reg = repo / "registry.json"
    row = {"id": "s", "onnx": fp32.name, "quant_mode": "static", "quant_calibration_set": "cal.npz"}
    reg.write_text(json.dumps({"models": [{**row, "quant_eval_set": "cal.npz"}]}))
    got = run_gate(reg).to_json()["models"][0]
    assert got["status"] == "pass" and got["samples"] == 40, got["reason"]


def _graph_model(repo, name, nodes, inits, opset, out_shape=(1, 4)):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(out_shape))
    g = onnx.helper.make_graph(nodes, name, [x], [y], inits)
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opset)])
    m.ir_version = 7
    path = repo / f"{name}.onnx"
    onnx.save(m, str(path))
    return path


def test_static_refusals_that_name_their_fix(repo):
    """A model static PTQ leaves unchanged, and per-channel on an opset without QuantizeLinear's
    axis: one line each, no file written; per tensor the old opset quantises."""
    cal = modelzoo.write_npz(repo / "cal.npz", x=np.random.default_rng(0).random((8, 1, 8), dtype=np.float32))
    relu = _graph_model(repo, "relu", [onnx.helper.make_node("Relu", ["x"], ["y"])], [], 17, (1, 8))
    line = assert_one_line_error(run_cli("ptq-static", relu, "-c", cal, cwd=repo), "changed no operator")
    assert "ops in the model: Relu" in line and "keep quant_mode fp32" in line
    w = onnx.numpy_helper.from_array(np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32), "W")
    old = _graph_model(repo, "old", [onnx.helper.make_node("MatMul", ["x", "W"], ["y"])], [w], 11)
    line = assert_one_line_error(run_cli("ptq-static", old, "-c", cal, cwd=repo), "opset 11", "needs opset 13")
    assert "--no-per-channel" in line
    assert not list(repo.glob("*.int8.onnx"))
    ok = run_cli("ptq-static", old, "-c", cal, "--no-per-channel", cwd=repo)
    assert ok.returncode == 0 and (repo / "old.int8.onnx").is_file(), ok.stderr
