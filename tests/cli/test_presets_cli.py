"""`--preset` on the command line: auto says what it picked, explicit options beat the preset,
the encoder's embedding is quantised by default, the new options reach the report."""

import json

import numpy as np

import modelzoo
from conftest import assert_one_line_error, run_cli
from quantgate.produce.config import detect


def _report(path):
    return json.loads(path.read_text())


def test_default_dynamic_quantises_the_embedding(repo):
    fp32 = modelzoo.int_input(repo, vocab=400)
    proc = run_cli("ptq-dynamic", fp32, "--report-out", repo / "r.json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "Gather×1" in proc.stdout and "MatMulInteger×1" in proc.stdout
    rep = _report(repo / "r.json")
    assert rep["quantized_op_types"] == {"Gather": 1, "MatMulInteger": 1}
    assert rep["gather_tables"] == ["embedding"]
    c = rep["config"]
    assert (c["per_channel"], c["weight_type"], c["reduce_range"]) == (True, "qint8", True)
    assert c["op_types"] == ["MatMul", "Gemm", "Gather"] and c["quant_format"] == "qoperator"
    assert "preset" not in proc.stdout, "the fixed default says nothing about the CPU"


def test_preset_auto_says_which_preset_it_chose(repo):
    fp32 = modelzoo.mlp(repo)
    proc = run_cli("ptq-dynamic", fp32, "--preset", "auto", "--report-out", repo / "r.json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    chosen, why = detect()
    assert f"preset auto: {chosen} ({why})" in proc.stdout
    if chosen in ("avx512_vnni", "arm64"):
        assert "another result on x86 CPUs without VNNI" in proc.stdout


def test_explicit_options_override_the_preset(repo):
    fp32 = modelzoo.int_input(repo, vocab=400)
    proc = run_cli(
        "ptq-dynamic",
        fp32,
        "--preset",
        "avx512_vnni",
        "--reduce-range",
        "--no-per-channel",
        "--op-types",
        "MatMul",
        "--report-out",
        repo / "r.json",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    assert "another result" not in proc.stdout, "7-bit weights asked for: the file is CPU-independent"
    c = _report(repo / "r.json")["config"]
    assert (c["weight_type"], c["reduce_range"], c["per_channel"], c["op_types"]) == ("qint8", True, False, ["MatMul"])
    assert _report(repo / "r.json")["quantized_op_types"] == {"MatMulInteger": 1}

    proc = run_cli("ptq-dynamic", fp32, "--weight-type", "u8", "--report-out", repo / "u.json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    c = _report(repo / "u.json")["config"]
    assert (c["weight_type"], c["reduce_range"], c["per_channel"]) == ("quint8", True, True)

    proc = run_cli("ptq-dynamic", fp32, "--preset", "avx512_vnni", "-o", repo / "v.onnx", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "another result on x86 CPUs without VNNI" in proc.stdout


def test_static_format_preprocess_and_types_reach_the_report(repo):
    fp32 = modelzoo.mlp(repo)
    cal = modelzoo.write_npz(repo / "cal.npz", x=np.random.default_rng(0).random((8, 8), dtype=np.float32))
    proc = run_cli(
        "ptq-static",
        fp32,
        "-c",
        cal,
        "--preset",
        "avx2",
        "--format",
        "qoperator",
        "--preprocess",
        "--activation-type",
        "s8",
        "--report-out",
        repo / "s.json",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    rep = _report(repo / "s.json")
    c = rep["config"]
    assert (c["quant_format"], c["preprocess"], c["activation_type"]) == ("qoperator", True, "qint8")
    assert (c["per_channel"], c["reduce_range"], c["weight_type"]) == (False, True, "qint8"), "the avx2 preset"
    assert rep["quantized_op_types"] == {"QGemm": 2}, "pre-processing fused MatMul+Add into Gemm; QOperator form"


def test_unknown_preset_is_one_line(repo):
    fp32 = modelzoo.mlp(repo)
    assert_one_line_error(run_cli("ptq-dynamic", fp32, "--preset", "avx9", cwd=repo), "--preset", "auto")
