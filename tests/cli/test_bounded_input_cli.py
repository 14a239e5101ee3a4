"""Bounded resources and hostile files, as a user meets them: exit 2, one line on stderr naming
the file, the field and the limit, no traceback, no hang, and the input files left as they were."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import hostile
import modelzoo
from conftest import assert_one_line_error, run_cli, write_registry
from quantgate import errors
from quantgate.cli import main

# Every exit code the contract documents (errors.EXIT_*): anything else is a crash.
EXIT_CODES = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}

# A hang is a failure, not a five-minute wait.
TIMEOUT = 60


def in_process(*args, cwd: Path | None = None) -> SimpleNamespace:
    """`quantgate ARGS` run in this process (what `run_cli` runs, without a new interpreter's
    second), as a `CompletedProcess`-like record; an exception that escapes fails the test."""
    with pytest.MonkeyPatch.context() as mp:
        if cwd is not None:
            mp.chdir(cwd)
        result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def _snapshot(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


def _unchanged(before: dict[Path, bytes]) -> None:
    for p, data in before.items():
        assert p.read_bytes() == data, f"{p} changed"


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    return hostile.zip_bomb_npz(tmp_path_factory.mktemp("bomb") / "bomb.npz")


# -- 1. decompression and header bombs --------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip bomb", "header bomb"])
def test_bombs_as_calibration_sets_are_one_line(kind, zip_bomb, repo):
    fp32 = modelzoo.mlp(repo)
    bomb = zip_bomb if kind == "zip bomb" else hostile.header_bomb_npz(repo / "h.npz")
    fragment = "declares 3,221,225,600 bytes uncompressed" if kind == "zip bomb" else "array 'x': is 4,000,000,000,000"
    before = _snapshot(fp32, bomb)
    for args in (["calibrate", "check", fp32, bomb], ["ptq-static", fp32, "-c", bomb]):
        proc = run_cli(*args, cwd=repo, timeout=TIMEOUT)
        assert_one_line_error(
            proc, str(bomb), fragment, "over the limit of 1,073,741,824 bytes", "QUANTGATE_MAX_ARRAY_BYTES"
        )
    assert not (repo / "mlp.int8.onnx").exists()
    _unchanged(before)


def test_the_array_limit_moves_with_its_variable(repo):
    fp32 = modelzoo.mlp(repo)
    cal = modelzoo.write_npz(repo / "cal.npz", x=np.zeros((8, 1, 8), np.float32))  # 256 bytes
    proc = run_cli("calibrate", "check", fp32, cal, cwd=repo, env={"QUANTGATE_MAX_ARRAY_BYTES": "255"})
    assert_one_line_error(proc, "cal.npz", "array 'x'", "over the limit of 255 bytes", "QUANTGATE_MAX_ARRAY_BYTES=N")
    assert run_cli("calibrate", "check", fp32, cal, cwd=repo, env={"QUANTGATE_MAX_ARRAY_BYTES": "256"}).returncode == 0
    proc = run_cli("calibrate", "check", fp32, cal, cwd=repo, env={"QUANTGATE_MAX_ARRAY_BYTES": "1 GiB"})
    assert_one_line_error(proc, "QUANTGATE_MAX_ARRAY_BYTES: '1 GiB' is not a positive whole number of bytes")


def test_an_eval_set_bomb_is_that_models_error_row(zip_bomb, repo):
    fp32 = modelzoo.mlp(repo)
    modelzoo.int8_standin(fp32)
    (repo / "eval.npz").write_bytes(zip_bomb.read_bytes())
    reg = write_registry(
        repo / "registry.json",
        [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic", "quant_eval_set": "eval.npz"}],
    )
    proc = run_cli("gate", "--registry", reg, "--json-out", repo / "out.json", cwd=repo, timeout=TIMEOUT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    reason = json.loads((repo / "out.json").read_text())["models"][0]["reason"]
    assert "declares 3,221,225,600 bytes uncompressed" in reason and "QUANTGATE_MAX_ARRAY_BYTES" in reason


# -- 2. declared input shapes -----------------------------------------------------------------


def test_an_input_too_large_to_draw_is_refused_by_name(repo):
    fp32 = modelzoo.conv_symbolic(repo)
    modelzoo.int8_standin(fp32)
    reg = write_registry(
        repo / "registry.json",
        [
            {
                "id": "conv",
                "onnx": fp32.name,
                "quant_mode": "dynamic",
                "quant_inputs": {"image": {"dims": {"N": 64, "H": 4096, "W": 4096}}},
            }
        ],
    )
    before = _snapshot(reg, fp32)
    proc = run_cli("gate", "--registry", reg, "--json-out", repo / "out.json", cwd=repo, timeout=TIMEOUT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    reason = json.loads((repo / "out.json").read_text())["models"][0]["reason"]
    assert "input 'image': one sample would draw 1,073,741,824 elements (shape [64, 1, 4096, 4096])" in reason
    assert "over the limit of 268,435,456 per input" in reason and "QUANTGATE_MAX_INPUT_ELEMENTS=N" in reason
    _unchanged(before)


# -- 3. registry size ---------------------------------------------------------------------------


def test_a_registry_over_the_size_limit_is_one_line(repo):
    (repo / "m.onnx").write_bytes(b"x")
    reg = hostile.big_registry(repo / "r.json", 20)
    env = {"QUANTGATE_MAX_REGISTRY_BYTES": "1024"}
    for cmd in ("validate", "gate"):
        proc = run_cli(cmd, "--registry", reg, cwd=repo, env=env)
        assert_one_line_error(proc, str(reg), "over the limit of 1,024 bytes", "QUANTGATE_MAX_REGISTRY_BYTES=N")


# -- 4. non-regular files and special JSON ----------------------------------------------------


def test_named_pipes_never_hang(repo):
    fp32 = modelzoo.mlp(repo)
    pipe = hostile.fifo(repo / "pipe")
    cases = [
        (["validate", "--registry", pipe], "registry"),
        (["gate", "--registry", pipe], "registry"),
        (["comment", "--results", pipe, "--mode", "off"], "results"),
        (["ptq-dynamic", pipe], "model"),
        (["ptq-static", fp32, "-c", pipe], "calibration set"),
        (["calibrate", "check", fp32, pipe], "calibration set"),
        (["calibrate", "build", fp32, "--from", pipe, "-o", repo / "cal.npz"], "calibration source"),
    ]
    for args, what in cases:
        proc = run_cli(*args, cwd=repo, timeout=TIMEOUT)
        assert_one_line_error(proc, f"{pipe}: is a named pipe (FIFO), not a regular file; pass the {what} file itself")
    assert stat.S_ISFIFO(pipe.stat().st_mode)


def test_symlink_loops_are_one_line(repo):
    fp32 = modelzoo.mlp(repo)
    loop = hostile.symlink_loop(repo / "loop.json")
    for args in (["validate", "--registry", loop], ["comment", "--results", loop, "--mode", "off"]):
        assert_one_line_error(run_cli(*args, cwd=repo), str(loop), "is a symlink loop")
    hostile.symlink_loop(repo / "loop.onnx")
    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": fp32.name}])
    proc = run_cli("gate", "loop.onnx", "--registry", reg, cwd=repo)
    assert_one_line_error(proc, "loop.onnx: cannot be resolved (a symlink loop)")


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("NaN", "NaN is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("1e400", "1e400 is too large for a number"),
    ],
)
def test_a_budget_json_has_no_number_for_is_refused_by_validate_and_gate(repo, value, fragment):
    fp32 = modelzoo.mlp(repo)
    modelzoo.int8_standin(fp32)
    reg = repo / "registry.json"
    reg.write_text(
        '{\n  "models": [\n    {\n      "id": "m",\n      "onnx": "mlp.onnx",\n      "quant_mode": "dynamic",\n'
        f'      "quant_accuracy_budget_plcc": {value}\n    }}\n  ]\n}}\n'
    )
    before = _snapshot(reg, fp32)
    run = run_cli if value == "NaN" else in_process  # one real process is enough to prove the rest
    v = run("validate", "--registry", reg, cwd=repo)
    assert v.returncode == 2 and "Traceback" not in v.stderr
    first = v.stderr.splitlines()[0]
    assert first.startswith(f"{reg}:7: models[0].quant_accuracy_budget_plcc: {fragment}")
    assert "; fix: write a finite number" in first
    g = run("gate", "--registry", reg, cwd=repo)  # that entry's error row, not a refused registry
    assert g.returncode == 2 and "Traceback" not in g.stdout + g.stderr
    assert "[ERROR] m (dynamic)" in g.stdout and f"models[0].quant_accuracy_budget_plcc: {fragment}" in g.stdout
    _unchanged(before)


@pytest.mark.parametrize(
    "data, fragments",
    [
        (b'{"models": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", [":1:84: nested more than 64 levels deep"]),
        (b'{"models": [\n{"id": "m\xc3", "onnx": "m.onnx"}]}', [":2: not UTF-8 text (byte 0xc3)"]),
        (b'{"models": [], "n": 1' + b"0" * 5000 + b"}", ["5,001 digits is too long"]),
    ],
    ids=["deep", "not-utf8", "huge-int"],
)
def test_special_json_is_one_line(repo, data, fragments):
    reg = repo / "registry.json"
    reg.write_bytes(data)
    for cmd in ("validate", "gate"):
        run = run_cli if cmd == "gate" and data.startswith(b'{"models": [], "x": [') else in_process
        line = assert_one_line_error(run(cmd, "--registry", reg, cwd=repo), str(reg), *fragments)
        line.encode("utf-8")
    assert reg.read_bytes() == data


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b'{"models": [{"id": "m\\udc00", "onnx": "m.onnx", "quant_mode": "dynamic"}]}', "m\\udc00"),
        (b'{"models": [{"\\ud800": 1, "id": "m", "onnx": "m.onnx", "quant_mode": "dynamic"}]}', "m.onnx"),
        (
            b'{"models": [{"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic", "n": 1' + b"0" * 5000 + b"}]}",
            "5,001 digits is too long",
        ),
    ],
    ids=["lone-low-surrogate", "surrogate-key", "huge-int-in-an-entry"],
)
def test_odd_json_inside_an_entry_stays_with_that_entry(repo, data, fragment):
    """A lone surrogate is text JSON allows: kept, shown escaped; a number Python cannot hold is
    that entry's problem. Either way the registry is read and its other entries gated."""
    reg = repo / "registry.json"
    reg.write_bytes(data)
    v = in_process("validate", "--registry", reg, cwd=repo)
    assert v.returncode == 2 and v.stderr.splitlines()[-1].endswith("problem(s)")
    g = in_process("gate", "--registry", reg, cwd=repo)
    assert g.returncode == 2 and "[ERROR] m" in g.stdout and not g.stderr.strip()
    assert fragment in v.stderr + g.stdout
    for line in (v.stderr + g.stdout).splitlines():
        line.encode("utf-8")
    assert reg.read_bytes() == data


# -- any registry at all: exit 0 or 2, never a traceback --------------------------------------

_odd_text = st.sampled_from(["a", "b", "a\ud800", "\udfff", "line\nbreak", "tab\t", "NaN", "m\x00.onnx"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | _odd_text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | _odd_text, inner, max_size=4),
    max_leaves=20,
)
_paths = st.sampled_from(["m.onnx", "../m.onnx", "/etc/m.onnx", "loop.onnx", "m\x00.onnx", "", "s/../m.onnx", "m.npz"])
_entry = st.fixed_dictionaries(
    {},
    optional={
        "id": _odd_text | _json,
        "onnx": _paths | _json,
        "quant_mode": st.sampled_from(["fp32", "dynamic", "static", "qat", "int4"]) | _json,
        "quant_calibration_set": _paths | _json,
        "quant_eval_set": _paths | _json,
        "quant_accuracy_budget_plcc": st.floats(allow_nan=True, allow_infinity=True) | _json,
        "quant_gate_samples": st.integers() | _json,
        "quant_inputs": st.dictionaries(
            st.sampled_from(["x", "y"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "shape": st.lists(st.integers(), max_size=3),
                    "dims": st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                    "low": _json,
                    "high": _json,
                },
            ),
            max_size=2,
        )
        | _json,
        "quant_gate_outputs": st.lists(st.text(max_size=3), max_size=2) | _json,
        "sha256": _json,
    },
)
_registry = st.one_of(
    _json,
    st.fixed_dictionaries({"models": st.lists(_entry, max_size=4)}, optional={"schema_version": _json}),
    st.fixed_dictionaries({"models": _json}),
)
_deep = st.integers(40, 5000).map(lambda n: ('{"models": [], "x": ' + "[" * n + "]" * n + "}").encode())


def _mangled(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with a few bytes replaced or inserted somewhere."""
    return st.tuples(st.integers(0, len(data)), st.integers(0, 4), st.binary(max_size=4)).map(
        lambda t: data[: t[0]] + t[2] + data[t[0] + t[1] :]
    )


def _not_json_number(doc) -> bool:
    """Whether `doc` holds a number JSON text cannot (NaN, an infinity)."""
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and v - v != 0:
            return True
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


@pytest.fixture(scope="module")
def cli_repo(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("any_registry")
    (d / ".git").mkdir()
    modelzoo.mlp(d, name="m")
    hostile.symlink_loop(d / "loop.onnx")
    return d


def _check_any_registry(repo: Path, data: bytes) -> list[str]:
    """`validate` on `data` as a registry: exit 0, or exit 2 with one error line on stderr or one
    line per problem and the count; `gate`: a documented exit code, at most one error line on
    stderr; every line writable as UTF-8; no exception escapes; the file unchanged. Returns
    validate's stderr lines."""
    reg = repo / "registry.json"
    reg.write_bytes(data)
    v = in_process("validate", "--registry", reg, cwd=repo)
    assert v.returncode in (0, 2), (v.returncode, v.stdout, v.stderr)
    lines = v.stderr.splitlines()
    if v.returncode == 2:
        assert lines, v.stdout
        if lines[-1].startswith("quantgate: error: "):
            assert len(lines) == 1, lines
        else:  # one line per problem, then the warnings (a field that looks misspelt), then the count
            problems = [ln for ln in lines[:-1] if ": warning: " not in ln]
            assert lines[-1].endswith(f"{len(problems)} problem(s)"), lines
    g = in_process("gate", "--registry", reg, cwd=repo)
    assert g.returncode in EXIT_CODES, (g.returncode, g.stdout, g.stderr)
    if g.stderr.strip():
        assert len(g.stderr.splitlines()) == 1 and g.stderr.startswith("quantgate: error: "), g.stderr
    for line in [*lines, *g.stdout.splitlines(), *g.stderr.splitlines()]:
        line.encode("utf-8")
    assert reg.read_bytes() == data
    return lines


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_registry)
def test_any_json_as_a_registry_is_exit_0_or_2_never_a_traceback(cli_repo, doc):
    lines = _check_any_registry(cli_repo, json.dumps(doc, allow_nan=True).encode("utf-8"))
    if _not_json_number(doc):  # refused where it stands, with the file's name and line
        assert any(f"{cli_repo / 'registry.json'}:1" in ln for ln in lines), lines


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64) | _deep | _registry.map(lambda d: json.dumps(d).encode()).flatmap(_mangled))
@example(data=b'{"models":[{"\xc2\x80onnx":""}]}')  # a problem and a look-alike field's warning at once
def test_any_bytes_as_a_registry_is_exit_0_or_2_never_a_traceback(cli_repo, data):
    _check_any_registry(cli_repo, data)
