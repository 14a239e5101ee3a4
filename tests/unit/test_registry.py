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


# -- what the registry says about its own mistakes (mutation testing found these untested) -------


def test_typo_suggests_for_our_prefixes_and_long_names_only():
    from quantgate.registry_read import typo

    said = "is not a quantgate field, so quantgate ignores it"
    assert typo("onnxx") == f"'onnxx' {said}; did you mean 'onnx'?"  # five letters: checked
    assert typo("uid") is None  # under five letters, not ours: a project's own field
    assert typo("onnx") is None and typo("sha512", present=("sha256",)) is None
    # every word of the key in one field's name, in any order
    assert typo("quant_plcc_budget_accuracy").endswith("did you mean 'quant_accuracy_budget_plcc'?")
    # the single closest name, not every near one
    assert typo("quant_clibration_set").endswith("did you mean 'quant_calibration_set'?")
    assert typo("quant_zzz").endswith("names are quantgate's: give a field of your own another prefix")


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        (
            "quant_inputs",
            {"x": {"shape": [1], "colour": 1}},
            "remove the unknown key (allowed: shape, low, high, dims)",
        ),
        ("id", "", "give a non-empty value"),
        ("onnx", "model.txt", "the value must match \\.onnx$"),
        ("quant_gate_outputs", ["y", "y"], "see the registry reference (docs/registry.md), rule 'uniqueItems'"),
    ],
)
def test_each_schema_rule_has_its_own_fix(repo, field, value, fix):
    row = {"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic", field: value}
    reg = load_registry(write_registry(repo / "registry.json", [row]))
    fixes = [p.fix for p in reg.problems]
    assert fix in fixes, fixes


def test_a_refused_number_is_the_problem_of_its_field(repo):
    (repo / "registry.json").write_text(
        '{"schema_version": 1, "models": [\n {"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic",\n'
        '  "quant_accuracy_budget_plcc": NaN}]}\n'
    )
    reg = load_registry(repo / "registry.json")
    (p,) = [p for p in reg.problems if "NaN" in p.message or "finite" in (p.fix or "")]
    assert p.where == "models[0].quant_accuracy_budget_plcc" and p.line == 3
    assert p.fix == "write a finite number (JSON has no NaN or infinity)"  # the reader's own fix, whole


def test_a_registry_that_cannot_be_read_says_why(repo):
    folder = repo / "reg"
    folder.mkdir()
    with pytest.raises(UserError) as e:
        load_registry(folder)
    assert e.value.problem == "is a folder" and e.value.fix == "pass the registry JSON file itself"
    with pytest.raises(UserError) as e:
        load_registry(repo / ("r" * 300 + ".json"))
    assert e.value.problem == "is unreadable (File name too long), not a regular file", e.value.problem


def test_why_a_path_does_not_resolve_in_a_few_words():
    import errno

    from quantgate.registry_read import why_unresolved

    assert why_unresolved(OSError(errno.ELOOP, "Too many levels of symbolic links")) == "a symlink loop"
    assert why_unresolved(RuntimeError("Symlink loop from '/x'")) == "a symlink loop"  # Python < 3.13's resolve()
    assert why_unresolved(OSError(errno.ENAMETOOLONG, "File name too long")) == "File name too long"
    assert why_unresolved(OSError()) == "OSError"  # no reason given: its kind
    assert why_unresolved(ValueError("embedded null byte")) == "embedded null byte"


def test_bytes_that_are_not_utf8_are_placed_on_their_line(repo):
    (repo / "registry.json").write_bytes(b'\n{"schema_version": 1,\n "models": [\xff]}\n')
    with pytest.raises(UserError) as e:
        load_registry(repo / "registry.json")
    assert e.value.line == 3 and "byte 0xff" in e.value.problem


def test_find_by_file_finds_the_entry_of_a_model_file(repo):
    import modelzoo

    a, b = modelzoo.mlp(repo, name="a"), modelzoo.mlp(repo, name="b")
    rows = [{"id": "A", "onnx": a.name, "quant_mode": "fp32"}, {"id": "B", "onnx": b.name, "quant_mode": "fp32"}]
    reg = load_registry(write_registry(repo / "registry.json", rows))
    assert reg.find_by_file(repo / "." / b.name).id == "B" and reg.find_by_file(a).id == "A"
    assert reg.find_by_file(repo / "other.onnx") is None


def test_the_producer_command_of_each_mode():
    from quantgate.registry import producer_command

    assert producer_command("static") == "quantgate ptq-static"
    assert producer_command("qat") == "quantgate qat"
    assert producer_command("dynamic") == "quantgate ptq-dynamic"


def test_a_sidecar_that_is_a_symlink_loop_is_refused(repo):
    (repo / "m.onnx").write_bytes(b"x")
    os.symlink("m.int8.onnx", repo / "m.int8.onnx")  # points at itself
    reg = load_registry(
        write_registry(repo / "registry.json", [{"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic"}])
    )
    assert any("leads outside the repository" in p.message for p in reg.problems), [str(p) for p in reg.problems]


def test_a_path_outside_is_said_once(repo):
    reg_path = write_registry(repo / "registry.json", [{"id": "m", "onnx": "/etc/m.onnx", "quant_mode": "dynamic"}])
    (p,) = [p for p in load_registry(reg_path).problems if p.where == "models[0].onnx"]
    assert str(p).count(str(reg_path)) == 1, str(p)


def test_a_dangling_sidecar_link_inside_the_repository_is_not_called_outside(repo):
    (repo / "m.onnx").write_bytes(b"x")
    os.symlink("nowhere/m.int8.onnx", repo / "m.int8.onnx")  # inside the repository, not there yet
    rows = [{"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic"}]
    reg = load_registry(write_registry(repo / "registry.json", rows))
    assert not any("leads outside" in p.message for p in reg.problems), [str(p) for p in reg.problems]
