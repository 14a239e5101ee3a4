import hashlib
import json
import os

import pytest

import quantgate
from conftest import assert_one_line_error, run_cli, write_registry
from quantgate.errors import UserError
from quantgate.registry import DigestMismatch, load_registry

FIRST_USER_ROW = {
    "id": "learned_filter_v1",
    "kind": "filter",
    "onnx": "learned_filter_v1.onnx",
    "opset": 17,
    "quant_mode": "fp32",
    "quant_accuracy_budget_plcc": 0.01,
    "license": "BSD-2-Clause-Patent",
    "license_url": "https://example.org/NOTICE",
    "sigstore_bundle": "learned_filter_v1.onnx.sigstore.json",
    "description": "Tiny residual filter",
    "notes": "self-supervised",
    "smoke": False,
}


def _model_file(d, name="m.onnx", data=b"not read by validate"):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
    return d / name


def test_first_users_registry_with_extra_fields_validates_unchanged(repo):
    tiny = repo / "model" / "tiny"
    _model_file(tiny, "learned_filter_v1.onnx")
    reg = write_registry(tiny / "registry.json", [FIRST_USER_ROW], **{"$schema": "./registry.schema.json"})
    before = reg.read_bytes()
    r = load_registry(reg)
    assert r.problems == []
    e = r.entries[0]
    assert e.raw["sigstore_bundle"] == FIRST_USER_ROW["sigstore_bundle"]  # kept, ignored
    assert e.onnx_path == (tiny / "learned_filter_v1.onnx").resolve()
    assert e.int8_path.name == "learned_filter_v1.int8.onnx"
    proc = run_cli("validate", "--registry", reg, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert reg.read_bytes() == before


def test_defaults_mode_fp32_and_budget(repo):
    _model_file(repo)
    r = load_registry(write_registry(repo / "r.json", [{"id": "a", "onnx": "m.onnx"}]))
    assert (r.entries[0].mode, r.entries[0].budget) == ("fp32", 0.01)


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


def test_absolute_and_dotdot_paths_are_refused(repo, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    _model_file(outside)
    _model_file(repo / "sub")
    reg = write_registry(
        repo / "sub" / "r.json",
        [
            {"id": "abs", "onnx": str(outside / "m.onnx")},
            {"id": "up", "onnx": "../../" + outside.name + "/m.onnx"},
            {"id": "cal", "onnx": "m.onnx", "quant_mode": "static", "quant_calibration_set": "../../x.npz"},
        ],
    )
    r = load_registry(reg)
    by_id = {e.id: e for e in r.entries}
    assert "is absolute" in str(by_id["abs"].problems[0])
    assert "outside the repository" in str(by_id["up"].problems[0])
    assert "quant_calibration_set" in str(by_id["cal"].problems[0])


def test_symlink_leading_outside_is_refused(repo, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    target = _model_file(outside)
    os.symlink(target, repo / "link.onnx")
    r = load_registry(write_registry(repo / "r.json", [{"id": "s", "onnx": "link.onnx"}]))
    assert "symlink" in str(r.entries[0].problems[0])


def test_calibration_path_is_relative_to_repository_root(repo):
    tiny = repo / "model" / "tiny"
    _model_file(tiny)
    (repo / "cal").mkdir()
    r = load_registry(
        write_registry(
            tiny / "r.json",
            [{"id": "s", "onnx": "m.onnx", "quant_mode": "static", "quant_calibration_set": "cal/s.npz"}],
        )
    )
    assert r.entries[0].calibration_path == (repo / "cal" / "s.npz").resolve()


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


def test_resolve_returns_sidecar_and_verifies_digest(repo):
    _model_file(repo, "m.onnx", b"fp32 bytes")
    _model_file(repo, "m.int8.onnx", b"int8 bytes")
    good = hashlib.sha256(b"int8 bytes").hexdigest()
    reg = write_registry(
        repo / "r.json",
        [
            {"id": "q", "onnx": "m.onnx", "quant_mode": "dynamic", "int8_sha256": good},
            {"id": "f", "onnx": "m.onnx", "sha256": hashlib.sha256(b"fp32 bytes").hexdigest()},
            {
                "id": "bad",
                "onnx": "m.onnx",
                "quant_mode": "static",
                "quant_calibration_set": "c.npz",
                "int8_sha256": "0" * 64,
            },
        ],
    )
    assert quantgate.resolve("q", registry=reg) == (repo / "m.int8.onnx").resolve()
    assert quantgate.resolve("f", registry=reg) == (repo / "m.onnx").resolve()
    with pytest.raises(DigestMismatch, match="refusing to load"):
        quantgate.resolve("bad", registry=reg)
    with pytest.raises(UserError, match="no model with id 'zzz'"):
        quantgate.resolve("zzz", registry=reg)


def test_schema_ships_in_the_package():
    from importlib import resources

    for name in ("registry.schema.json", "results.schema.json"):
        data = json.loads(resources.files("quantgate").joinpath("schemas", name).read_text())
        assert data["$schema"].startswith("https://json-schema.org/")


def test_digest_follows_a_rewrite_of_the_same_size(repo):
    from quantgate.paths import sha256_file

    f = repo / "w.bin"
    f.write_bytes(b"a" * 64)
    first = sha256_file(f)
    with open(f, "r+b") as h:  # in place, same size: the cached digest must not be reused
        h.write(b"b")
    assert sha256_file(f) == hashlib.sha256(b"b" + b"a" * 63).hexdigest() != first
