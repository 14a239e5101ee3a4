import hashlib
import json
import os

import pytest

import quantgate
from conftest import write_registry
from quantgate.errors import UserError
from quantgate.registry import DigestMismatch, load_registry
from registry_support import (
    _model_file,
)


def test_defaults_mode_fp32_and_budget(repo):
    _model_file(repo)
    r = load_registry(write_registry(repo / "r.json", [{"id": "a", "onnx": "m.onnx"}]))
    assert (r.entries[0].mode, r.entries[0].budget) == ("fp32", 0.01)


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


def test_resolve_returns_sidecar_and_verifies_digest(repo):
    _model_file(repo, "m.onnx", b"fp32 bytes")
    _model_file(repo, "m.int8.onnx", b"int8 bytes")
    _model_file(repo, "n.onnx", b"fp32 bytes")  # a static entry needs its own fp32 file (its own sidecar path)
    _model_file(repo, "n.int8.onnx", b"int8 bytes")
    good = hashlib.sha256(b"int8 bytes").hexdigest()
    reg = write_registry(
        repo / "r.json",
        [
            {"id": "q", "onnx": "m.onnx", "quant_mode": "dynamic", "int8_sha256": good},
            {"id": "f", "onnx": "m.onnx", "sha256": hashlib.sha256(b"fp32 bytes").hexdigest()},
            {
                "id": "bad",
                "onnx": "n.onnx",
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
