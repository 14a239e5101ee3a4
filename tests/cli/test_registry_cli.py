import json

import pytest

import modelzoo
from conftest import assert_one_line_error, run_cli, write_registry
from quantgate.registry import load_registry
from registry_support import (
    FIRST_USER_ROW,
    _model_file,
)


def test_first_users_registry_with_extra_fields_validates_unchanged(repo):
    tiny = repo / "model" / "tiny"
    _model_file(tiny, "learned_filter_v1.onnx")
    reg = write_registry(tiny / "registry.json", [FIRST_USER_ROW], **{"$schema": "./registry.schema.json"})
    before = reg.read_bytes()
    r = load_registry(reg)
    assert r.problems == []
    e = r.entries[0]
    assert e.warnings == []  # its own fields (kind, license, smoke, ...) are not taken for typos
    assert e.raw["sigstore_bundle"] == FIRST_USER_ROW["sigstore_bundle"]  # kept, ignored
    assert e.onnx_path == (tiny / "learned_filter_v1.onnx").resolve()
    assert e.int8_path.name == "learned_filter_v1.int8.onnx"
    proc = run_cli("validate", "--registry", reg, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert reg.read_bytes() == before


def test_validate_reports_every_problem_at_once_with_path_and_fix(repo):
    _model_file(repo)
    reg = write_registry(
        repo / "r.json",
        [
            {"id": "a", "onnx": "m.onnx", "quant_mode": "int4"},
            {"id": "b", "onnx": "m.onnx", "quant_mode": "static"},
            {"id": "c", "onnx": "m.onnx", "quant_accuracy_budget_plcc": 1.5},
            {"id": "d", "onnx": "m.onnx", "sha256": "ABC"},
            {"onnx": "m.onnx"},
            {"id": "a", "onnx": "m.onnx"},
        ],
    )
    proc = run_cli("validate", "--registry", reg, cwd=repo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    text = proc.stderr
    assert "models[0].quant_mode" in text and 'use one of "fp32", "dynamic", "static", "qat"' in text
    assert "models[1]" in text and "quant_calibration_set" in text
    assert "models[2].quant_accuracy_budget_plcc" in text and "between 0 and 1" in text
    assert "models[3].sha256" in text and "64 lowercase hex" in text
    assert "models[4]" in text and "'id' is a required property" in text
    assert "models[5].id" in text and "duplicate id 'a'" in text
    assert "models[1].quant_mode: mode 'static' ships m.int8.onnx, which does not exist" in text
    assert lines[-1].endswith("7 problem(s)")
    assert all("fix:" in ln for ln in lines[:-1])


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level must be an object"),
        ('{"entries": []}', '"models" array'),
    ],
)
def test_malformed_registry_is_one_line_exit_2(repo, text, fragment):
    reg = repo / "r.json"
    reg.write_text(text)
    for cmd in (["validate"], ["gate"]):
        assert_one_line_error(run_cli(*cmd, "--registry", reg, cwd=repo), str(reg), fragment)


def test_missing_registry_names_the_option(repo):
    assert_one_line_error(run_cli("gate", cwd=repo), "model/tiny/registry.json", "--registry")


def test_validate_flags_missing_files_and_sidecars(repo):
    _model_file(repo)
    reg = write_registry(
        repo / "r.json",
        [
            {"id": "gone", "onnx": "nope.onnx"},
            {"id": "nosidecar", "onnx": "m.onnx", "quant_mode": "dynamic"},
            {"id": "nocal", "onnx": "m.onnx", "quant_mode": "static", "quant_calibration_set": "c.npz"},
        ],
    )
    proc = run_cli("validate", "--registry", reg, cwd=repo)
    assert proc.returncode == 2
    assert "nope.onnx" in proc.stderr and "m.int8.onnx" in proc.stderr and "c.npz" in proc.stderr


def _line_of(reg, fragment):
    return next(i for i, ln in enumerate(reg.read_text().splitlines(), 1) if fragment in ln)


def test_validate_opens_the_models_and_names_each_wrong_field_at_its_line(repo):
    """What only the models can tell (an input or output name that is not in the graph, a
    digest that does not match the file) is found by validate, not first by the gate."""
    fp32 = modelzoo.mlp(repo)
    modelzoo.int8_standin(fp32)
    good = {"id": "good", "onnx": fp32.name, "quant_mode": "dynamic"}
    rows = [
        {**good, "id": "bad_input", "quant_inputs": {"nope": {"shape": [1, 8]}}},
        {**good, "id": "bad_output", "quant_gate_outputs": ["nosuch"]},
        {**good, "id": "bad_digest", "int8_sha256": "0" * 64},
        good,
    ]
    reg = repo / "r.json"
    reg.write_text(json.dumps({"models": rows}, indent=2) + "\n")
    proc = run_cli("validate", "--registry", reg, cwd=repo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].endswith("3 problem(s)"), proc.stderr
    text = reg.read_text()
    inp = _line_of(reg, '"quant_inputs"')
    out = _line_of(reg, '"quant_gate_outputs"')
    dig = _line_of(reg, '"int8_sha256"')
    assert lines[0].startswith(f"{reg}:{inp}: models[0].quant_inputs: bad_input: ") and "'nope'" in lines[0]
    assert "its inputs are x" in lines[0]
    assert lines[1].startswith(f"{reg}:{out}: models[1].quant_gate_outputs: bad_output: ") and "nosuch" in lines[1]
    assert lines[2].startswith(f"{reg}:{dig}: models[2].int8_sha256: bad_digest: ") and "does not match" in lines[2]
    assert reg.read_text() == text  # validate never writes

    quick = run_cli("validate", "--quick", "--registry", reg, cwd=repo)
    assert quick.returncode == 0 and "schema and files" in quick.stdout, quick.stderr

    reg.write_text(json.dumps({"models": [good]}, indent=2))
    ok = run_cli("validate", "--registry", reg, cwd=repo)
    assert ok.returncode == 0 and "schema, files and models" in ok.stdout, ok.stderr


def test_a_misspelt_quantgate_field_is_a_warning_at_its_line_never_a_refusal(repo):
    """A typo of a quantgate field would be silently ignored (`quant_mdoe` leaves the model
    fp32, so ungated): validate and the gate say so at the field's line, and neither refuses
    the registry for it (unknown fields are kept and ignored)."""
    fp32 = modelzoo.mlp(repo)
    modelzoo.int8_standin(fp32)
    rows = [
        {"id": "typo", "onnx": fp32.name, "quant_mdoe": "dynamic"},
        {"id": "prefixed", "onnx": fp32.name, "quant_mode": "dynamic", "quant_budget": 0.02, "licence": "MIT"},
        {"id": "own", "onnx": fp32.name, "quant_mode": "dynamic", "int8_owner": "me", "uid": 7, "sha512": "x"},
    ]
    reg = repo / "r.json"
    reg.write_text(json.dumps({"models": rows}, indent=2) + "\n")
    proc = run_cli("validate", "--registry", reg, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if ": warning: " in ln]
    assert len(warned) == 3, proc.stderr  # licence, uid and sha512 are nobody's typos
    assert warned[0].startswith(f"{reg}:{_line_of(reg, 'quant_mdoe')}: models[0].quant_mdoe: warning: ")
    assert "did you mean 'quant_mode'?" in warned[0]
    assert "models[1].quant_budget" in warned[1] and "'quant_accuracy_budget_plcc'" in warned[1]
    assert "models[2].int8_owner" in warned[2] and "another prefix" in warned[2]

    gate = run_cli("gate", "--registry", reg, "--json-out", repo / "g.json", cwd=repo)
    rows_out = {r["id"]: r for r in json.loads((repo / "g.json").read_text())["models"]}
    assert rows_out["typo"]["status"] == "skipped"
    line = _line_of(reg, "quant_mdoe")
    assert f"models[0].quant_mdoe (line {line}): " in rows_out["typo"]["warnings"][0]
    assert "did you mean 'quant_mode'?" in gate.stdout


def test_a_sidecar_gated_as_another_mode_or_shared_between_modes_is_refused(repo):
    """The sidecar records the mode it was made in: an entry whose quant_mode says otherwise, or
    two entries of different modes on one fp32 file (one sidecar path), are found by validate at
    the field's line and are error rows in the gate."""
    from quantgate.produce.dynamic import quantize_dynamic

    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = repo / "r.json"
    row = {"id": "m", "onnx": fp32.name, "quant_mode": "static", "quant_calibration_set": "cal.npz"}
    reg.write_text(json.dumps({"models": [row]}, indent=2))
    (repo / "cal.npz").write_bytes(b"")  # not read: the mode is wrong before any calibration matters
    proc = run_cli("validate", "--registry", reg, cwd=repo)
    assert proc.returncode == 2, proc.stderr
    assert f"{reg}:{_line_of(reg, 'quant_mode')}: models[0].quant_mode: m: " in proc.stderr
    assert "was made as a dynamic sidecar" in proc.stderr and "quantgate ptq-static" in proc.stderr

    rows = [
        {"id": "dyn", "onnx": fp32.name, "quant_mode": "dynamic"},
        {"id": "sta", "onnx": fp32.name, "quant_mode": "static", "quant_calibration_set": "cal.npz"},
        {"id": "dyn2", "onnx": fp32.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.05},
    ]
    reg.write_text(json.dumps({"models": rows}, indent=2))
    proc = run_cli("validate", "--quick", "--registry", reg, cwd=repo)
    assert proc.returncode == 2 and "models[1].onnx: sta: its sidecar mlp.int8.onnx is also 'dyn''s" in proc.stderr
    assert "models[2]" not in proc.stderr  # the same mode twice is two budgets on one file: allowed
    gate = run_cli("gate", "--registry", reg, "--json-out", repo / "g.json", cwd=repo)
    status = {r["id"]: r["status"] for r in json.loads((repo / "g.json").read_text())["models"]}
    assert status == {"dyn": "pass", "sta": "error", "dyn2": "pass"} and gate.returncode == 2


def test_validate_quiet_prints_the_result_and_errors_only(repo):
    fp32 = modelzoo.mlp(repo)
    modelzoo.int8_standin(fp32)
    reg = write_registry(repo / "r.json", [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic", "quant_mdoe": 1}])
    loud = run_cli("validate", "--registry", reg, cwd=repo)
    assert loud.returncode == 0 and "warning:" in loud.stderr and ": ok (" in loud.stdout
    quiet = run_cli("validate", "-q", "--registry", reg, cwd=repo)
    assert quiet.returncode == 0 and quiet.stderr == "" and ": ok (" in quiet.stdout


def test_outside_a_git_checkout_a_missing_set_names_the_folder_taken_as_root(tmp_path):
    models = tmp_path / "models"
    fp32 = modelzoo.mlp(models)
    modelzoo.int8_standin(fp32)
    row = {"id": "m", "onnx": fp32.name, "quant_mode": "static", "quant_calibration_set": "cal.npz"}
    reg = write_registry(models / "registry.json", [row])
    proc = run_cli("validate", "--registry", "registry.json", cwd=models)
    assert proc.returncode == 2
    assert f"relative to the repository root, {models.resolve()}: no git checkout holds the registry" in proc.stderr
    assert "--root" in proc.stderr and str(reg.name) in proc.stderr
