"""The command line: gate on real ONNX Runtime sessions: pass, fail, every kind of error, hostile models."""

import json

import numpy as np
import onnx
import pytest

import modelzoo
from conftest import assert_one_line_error, run_cli, write_registry
from gate_support import (
    _validate_results,
)
from quantgate.gate import run_gate
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.produce.static import quantize_static


def test_pass_then_fail_when_budget_is_below_the_measured_drop(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5}],
    )
    ok = run_gate(reg, samples=64).to_json()
    _validate_results(ok)
    row = ok["models"][0]
    assert (ok["verdict"], ok["exit_code"], row["status"]) == ("pass", 0, "pass")
    assert 0 < row["drop"] < 0.5 and row["headroom"] == pytest.approx(0.5 - row["drop"])
    assert row["fp32_bytes"] == fp32.stat().st_size and row["int8_bytes"] > 0
    assert row["sqnr_db"] is not None and row["max_abs_error"] > 0

    budget = row["drop"] / 2
    write_registry(
        reg, [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": budget}]
    )
    proc = run_cli(
        "gate",
        "--registry",
        reg,
        "--samples",
        "64",
        "--json-out",
        repo / "r.json",
        "--markdown-out",
        repo / "r.md",
        cwd=repo,
    )
    assert proc.returncode == 1, proc.stderr
    assert "[FAIL ] mlp (dynamic)" in proc.stdout and "exceeds budget" in proc.stdout
    doc = json.loads((repo / "r.json").read_text())
    _validate_results(doc)
    assert doc["verdict"] == "fail" and doc["models"][0]["headroom"] < 0
    assert doc["models"][0]["drop"] == row["drop"]  # same inputs, same figure
    assert "❌ fail" in (repo / "r.md").read_text()


def test_one_error_never_stops_the_others(repo):
    good = modelzoo.mlp(repo, name="good")
    quantize_dynamic(good)
    modelzoo.mlp(repo, name="missing")
    modelzoo.mlp(repo, name="corrupt")
    (repo / "corrupt.int8.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf")
    tampered = modelzoo.mlp(repo, name="tampered")
    quantize_dynamic(tampered)
    reg = write_registry(
        repo / "registry.json",
        [
            {"id": "good", "onnx": "good.onnx", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5},
            {"id": "missing", "onnx": "missing.onnx", "quant_mode": "dynamic"},
            {"id": "corrupt", "onnx": "corrupt.onnx", "quant_mode": "dynamic"},
            {"id": "tampered", "onnx": "tampered.onnx", "quant_mode": "dynamic", "int8_sha256": "0" * 64},
            {"id": "fp32only", "onnx": "good.onnx"},
            {"id": "badmode", "onnx": "good.onnx", "quant_mode": "int4"},
        ],
    )
    results = run_gate(reg).to_json()
    _validate_results(results)
    rows = {r["id"]: r for r in results["models"]}
    assert rows["good"]["status"] == "pass"
    assert rows["missing"]["status"] == "error" and "int8 sidecar not found" in rows["missing"]["reason"]
    assert rows["corrupt"]["status"] == "error" and "cannot load" in rows["corrupt"]["reason"]
    assert rows["tampered"]["status"] == "error" and "int8_sha256" in rows["tampered"]["reason"]
    assert rows["fp32only"]["status"] == "skipped"
    assert rows["badmode"]["status"] == "error" and "quant_mode" in rows["badmode"]["reason"]
    assert results["counts"] == {"pass": 1, "fail": 0, "error": 4, "skipped": 1, "total": 6}
    assert (results["verdict"], results["exit_code"]) == ("error", 2)
    proc = run_cli("gate", "--registry", reg, cwd=repo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout.count("[ERROR]") == 4 and "[PASS ] good" in proc.stdout


def test_model_file_not_in_registry_is_gated_ad_hoc(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    proc = run_cli("gate", fp32, "--budget", "0.9", "--registry", repo / "none.json", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[PASS ]" in proc.stdout


def test_registry_file_can_be_named_by_its_model_path(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.0}],
    )
    proc = run_cli("gate", fp32, "--registry", reg, cwd=repo)
    assert proc.returncode == 1 and "[FAIL ] mlp" in proc.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--samples", "0"], "--samples"),
        (["--bogus"], "No such option"),
        (["nosuchid"], "no model with id 'nosuchid'"),
    ],
)
def test_gate_usage_mistakes_are_one_line(repo, args, fragment):
    fp32 = modelzoo.mlp(repo)
    reg = write_registry(repo / "registry.json", [{"id": "mlp", "onnx": fp32.name}])
    assert_one_line_error(run_cli("gate", "--registry", reg, *args, cwd=repo), fragment)


def test_a_model_that_fails_to_run_is_one_clean_line(repo):
    fp32 = modelzoo.conv_symbolic(repo)
    modelzoo.int8_standin(fp32)
    reg = write_registry(repo / "registry.json", [{"id": "conv", "onnx": fp32.name, "quant_mode": "dynamic"}])
    proc = run_cli("gate", "--registry", reg, cwd=repo)
    assert proc.returncode == 2
    assert "onnxruntime:" not in proc.stderr  # no ONNX Runtime log lines around ours
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("[ERROR]"))
    assert "fails on sample 0" in line and "quant_inputs" in line


def test_gating_a_file_names_the_fix_for_the_usual_slips(repo):
    """A sidecar named instead of its model, a file that is not there, or a basename the
    registry lists in another folder: one line that says what to name instead."""
    models = repo / "models"
    fp32 = modelzoo.mlp(models)
    quantize_dynamic(fp32)
    reg = write_registry(models / "registry.json", [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}])
    for arg, fragments in (
        (models / "mlp.int8.onnx", ("is an int8 sidecar", "name the fp32 model (mlp.onnx)")),
        ("mlp.onnx", ("the registry lists models/mlp.onnx as 'mlp'", "name the id 'mlp'")),  # as typed from here
        (repo / "nothere.onnx", ("no such model file",)),
        ("--root", ("--root",)),
    ):
        args = ["--root", repo / "nosuchdir"] if arg == "--root" else [arg]
        assert_one_line_error(run_cli("gate", *args, "--registry", reg, cwd=repo), *fragments)


def test_an_unlisted_static_sidecar_is_gated_as_static(repo):
    """A sidecar no registry lists and quantgate did not stamp is labelled by what its graph shows."""
    fp32 = modelzoo.mlp(repo)
    cal = modelzoo.write_npz(repo / "cal.npz", x=np.random.default_rng(0).random((32, 1, 8), dtype=np.float32))
    out = quantize_static(fp32, cal).output
    m = onnx.load(str(out))
    del m.metadata_props[:]  # as another tool would leave it
    onnx.save(m, str(out))
    proc = run_cli("gate", fp32, "--budget", "0.5", "--registry", repo / "none.json", "--json-out", "-", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["models"][0]["mode"] == "static"


def test_report_paths_that_collide_or_loop_are_one_line(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(repo / "registry.json", [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}])
    same = repo / "same.json"
    proc = run_cli("gate", "--registry", reg, "--json-out", same, "--markdown-out", same, cwd=repo)
    assert_one_line_error(proc, f"--markdown-out {same}", "is also this run's --json-out file")
    assert not same.exists()
    (repo / "loop.json").symlink_to(repo / "loop.json")
    proc = run_cli("gate", "--registry", reg, "--json-out", repo / "loop.json", cwd=repo)
    assert_one_line_error(proc, "--json-out", "loop.json", "cannot be resolved")


def test_a_model_that_hangs_onnx_runtime_becomes_an_error_row_and_the_others_finish(repo):
    hang = modelzoo.hanging(repo)
    good = modelzoo.mlp(repo, name="good")
    quantize_dynamic(good)
    reg = write_registry(
        repo / "registry.json",
        [
            {"id": "hang", "onnx": hang.name, "quant_mode": "dynamic"},
            {"id": "good", "onnx": good.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5},
        ],
    )
    proc = run_cli("gate", "--registry", reg, "--model-timeout", "2", "--json-out", repo / "r.json", cwd=repo)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    rows = {r["id"]: r for r in json.loads((repo / "r.json").read_text())["models"]}
    assert rows["hang"]["status"] == "error" and "timed out: still running after 2 s" in rows["hang"]["reason"]
    assert "--model-timeout" in rows["hang"]["reason"]
    assert rows["good"]["status"] == "pass"
    assert "Traceback" not in proc.stderr and "terminate flag" not in proc.stdout + proc.stderr


def test_a_pinned_count_past_what_a_runner_can_hold_is_refused_at_its_line(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(
        repo / "registry.json", [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic", "quant_gate_samples": 1000000}]
    )
    proc = run_cli("validate", "--registry", reg, "--quick", cwd=repo)
    assert proc.returncode == 2 and "quant_gate_samples" in proc.stderr and "262144" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
