"""Bounded resources and hostile files, at the library: every case is one `UserError` naming the
file, the field and the limit (and how to raise it), raised before the memory is taken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hostile
import modelzoo
from conftest import write_registry
from quantgate import limits
from quantgate.calibrate.sources.base import kind_of
from quantgate.errors import UserError
from quantgate.inputs import plan_inputs
from quantgate.npz import read_npz
from quantgate.onnxio import TensorSig, load_model
from quantgate.registry import load_registry
from quantgate.results import Results
from quantgate.strictjson import BadJSON, loads
from quantgate.text import plain


def within(seconds: float, fn, *args, **kwargs):
    """`fn(*args, **kwargs)`'s result or exception, failing the test if it takes longer than
    `seconds` (a reader blocked on a named pipe never returns: it is left in a daemon thread)."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    return hostile.zip_bomb_npz(tmp_path_factory.mktemp("bomb") / "bomb.npz")


# -- 1. decompression and header bombs --------------------------------------------------------

LIMITED = r"""
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (768 << 20, 768 << 20))
from quantgate.errors import UserError
from quantgate.npz import read_npz
t = time.perf_counter()
try:
    read_npz(sys.argv[1], lone_npy=True)
    print("loaded")
except UserError as e:
    print("refused", round(time.perf_counter() - t, 3), str(e))
"""


@pytest.mark.parametrize("kind", ["zip bomb", "npy header", "npz header"])
def test_bombs_are_refused_under_a_768_mib_address_space(kind, zip_bomb, tmp_path):
    """Under an address-space limit a load of the 3 GiB or 4 TB array is a MemoryError; the
    header check refuses the file before it gets there."""
    path = {
        "zip bomb": zip_bomb,
        "npy header": hostile.header_bomb_npy(tmp_path / "h.npy"),
        "npz header": hostile.header_bomb_npz(tmp_path / "h.npz"),
    }[kind]
    assert path.stat().st_size < 4 * hostile.MIB
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("QUANTGATE_MAX_ARRAY_BYTES", None)
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, str(path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    word, seconds, message = proc.stdout.strip().split(" ", 2)
    assert word == "refused" and float(seconds) < 1.0
    assert str(path) in message and "over the limit of 1,073,741,824 bytes" in message
    assert "QUANTGATE_MAX_ARRAY_BYTES" in message and "\n" not in message


def test_zip_bomb_names_what_it_declares(zip_bomb):
    with pytest.raises(UserError, match=r"declares 3,221,225,600 bytes uncompressed") as e:
        read_npz(zip_bomb)
    assert "raise the limit with QUANTGATE_MAX_ARRAY_BYTES=N" in str(e.value)


def test_header_bomb_names_the_array_and_its_size(tmp_path):
    with pytest.raises(UserError) as e:
        read_npz(hostile.header_bomb_npz(tmp_path / "h.npz"))
    assert e.value.field == "array 'x'" and e.value.subject == str(tmp_path / "h.npz")
    assert "4,000,000,000,000 bytes once loaded (shape [1000000000000], float32)" in str(e.value)


def test_a_header_promising_more_data_than_the_member_holds_is_refused_unallocated(tmp_path):
    path = hostile.header_bomb_npz(tmp_path / "t.npz", (100_000_000,), "<f8", data=b"\0" * 16)
    with pytest.raises(UserError, match=r"promises 800,000,000 bytes of data .* the file holds 16"):
        within(2, read_npz, path)
    npy = tmp_path / "t.npy"
    npy.write_bytes(hostile.npy_header((1000,), "<f4") + b"\0" * 10)
    with pytest.raises(UserError, match="promises 4,000 bytes"):
        read_npz(npy, lone_npy=True)


def test_arrays_under_the_limit_one_by_one_but_not_together(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 700)
    path = modelzoo.write_npz(tmp_path / "s.npz", a=np.zeros(100, np.float32), b=np.zeros(100, np.float32))
    with pytest.raises(UserError) as e:
        read_npz(path)
    assert e.value.field == "array 'b'" and "brings the file's arrays to 800 bytes" in str(e.value)
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 800)
    assert set(read_npz(path)) == {"a", "b"}


def test_the_environment_variable_lowers_and_raises_the_limit(tmp_path, monkeypatch):
    path = modelzoo.write_npz(tmp_path / "s.npz", x=np.arange(64, dtype=np.float32))
    monkeypatch.setenv("QUANTGATE_MAX_ARRAY_BYTES", "255")
    with pytest.raises(UserError, match=r"256 bytes once loaded .* over the limit of 255 bytes"):
        read_npz(path)
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 1)
    monkeypatch.setenv("QUANTGATE_MAX_ARRAY_BYTES", "256")  # the variable wins over the constant
    assert read_npz(path)["x"].shape == (64,)
    monkeypatch.setenv("QUANTGATE_MAX_ARRAY_BYTES", "lots")
    with pytest.raises(UserError, match="QUANTGATE_MAX_ARRAY_BYTES: 'lots' is not a positive whole number"):
        read_npz(path)


def test_too_many_members(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_NPZ_MEMBERS", 3)
    path = modelzoo.write_npz(tmp_path / "s.npz", **{f"k{i}": np.zeros(1) for i in range(4)})
    with pytest.raises(UserError, match=r"holds 4 members, over the limit of 3.*QUANTGATE_MAX_NPZ_MEMBERS"):
        read_npz(path)


def test_pickles_garbage_and_foreign_members_keep_one_line(tmp_path):
    obj = np.empty(2, dtype=object)
    np.savez(tmp_path / "p.npz", x=obj)
    with pytest.raises(UserError, match="holds Python objects \\(pickled\\); save plain numeric arrays"):
        read_npz(tmp_path / "p.npz")
    (tmp_path / "j.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match=r"not a readable \.npz"):
        read_npz(tmp_path / "j.npz")
    import zipfile

    with zipfile.ZipFile(tmp_path / "f.npz", "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(UserError, match=r"member 'notes\.txt': not a \.npy array"):
        read_npz(tmp_path / "f.npz")
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:
        z.writestr("x.npy", hostile.npy_header((0,)))
        z.writestr("x", hostile.npy_header((0,)))
    with pytest.raises(UserError, match="holds two arrays named 'x'"):
        read_npz(tmp_path / "d.npz")


def test_valid_sets_read_as_before(tmp_path):
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(5, dtype=np.int64)
    np.savez(tmp_path / "s.npz", x=a, y=b)
    np.savez_compressed(tmp_path / "c.npz", y=b, x=a)
    np.save(tmp_path / "one.npy", np.asfortranarray(a))
    s, c = read_npz(tmp_path / "s.npz"), read_npz(tmp_path / "c.npz")
    assert list(s) == ["x", "y"] and list(c) == ["y", "x"]
    assert all(np.array_equal(s[k], c[k]) and s[k].dtype == c[k].dtype for k in s)
    assert np.array_equal(read_npz(tmp_path / "one.npy", lone_npy=True)[""], a)


# -- 2. declared input shapes -----------------------------------------------------------------


def _sig(dims) -> list[TensorSig]:
    return [TensorSig("image", np.dtype(np.float32), tuple(dims))]


@pytest.mark.parametrize(
    "dims, spec, given",
    [
        (("N", 1, "H", "W"), {"image": {"dims": {"H": 32768, "W": 32768}}}, "dims"),
        (("N", 1, "H", "W"), {"image": {"shape": [1, 1, 32768, 32768]}}, "shape"),
        ((1, 1, 1 << 20, 1 << 20), None, "dims"),
    ],
)
def test_a_sample_over_the_element_limit_is_refused_before_drawing(dims, spec, given):
    t = time.perf_counter()
    with pytest.raises(UserError) as e:
        plan_inputs(_sig(dims), spec, label="r.json: big")
    assert time.perf_counter() - t < 0.5
    assert (e.value.subject, e.value.field) == ("r.json: big", "input 'image'")
    assert "over the limit of 268,435,456 per input" in str(e.value)
    assert f"quant_inputs.image.{given}" in str(e.value) and "QUANTGATE_MAX_INPUT_ELEMENTS=N" in str(e.value)


def test_the_element_limit_also_bounds_a_sample_across_its_inputs(monkeypatch):
    monkeypatch.setattr(limits, "MAX_INPUT_ELEMENTS", 1000)
    sigs = [TensorSig(n, np.dtype(np.float32), (1, 400)) for n in ("a", "b", "c")]
    with pytest.raises(UserError) as e:
        plan_inputs(sigs)
    assert e.value.field == "input 'c'" and "brings one sample to 1,200 elements across the inputs" in str(e.value)
    assert len(plan_inputs(sigs[:2])) == 2


def test_the_element_limit_is_inclusive_and_configurable(monkeypatch):
    spec = {"image": {"dims": {"H": 1 << 14, "W": 1 << 14}}}  # 2^28 elements exactly
    assert plan_inputs(_sig(("N", 1, "H", "W")), spec)[0].shape == (1, 1, 1 << 14, 1 << 14)
    monkeypatch.setenv("QUANTGATE_MAX_INPUT_ELEMENTS", str((1 << 28) - 1))
    with pytest.raises(UserError, match="over the limit of 268,435,455"):
        plan_inputs(_sig(("N", 1, "H", "W")), spec)


# -- 3. registry size and parse time ----------------------------------------------------------


def test_a_16k_entry_registry_loads_in_linear_time(repo):
    """16,000 entries took ~24 s when each entry's line was searched for in the whole text."""
    (repo / "m.onnx").write_bytes(b"x")
    path = hostile.big_registry(repo / "r.json", 16_000)
    t = time.perf_counter()
    reg = load_registry(path)
    assert time.perf_counter() - t < 10
    assert len(reg.entries) == 16_000 and reg.problems == []
    assert [reg.entries[i].line for i in (0, 1, 15_999)] == [5, 10, 5 + 5 * 15_999]


def test_each_entry_gets_its_own_line_even_with_duplicate_ids(repo):
    (repo / "m.onnx").write_bytes(b"x")
    path = write_registry(repo / "r.json", [{"id": "a", "onnx": "m.onnx"}, {"id": "a", "onnx": "m.onnx"}])
    reg = load_registry(path)
    assert [e.line for e in reg.entries] == [5, 9]
    assert reg.problems[0].line == 9 and "duplicate id 'a'" in str(reg.problems[0])


def test_registry_size_and_entry_limits(repo, monkeypatch):
    (repo / "m.onnx").write_bytes(b"x")
    path = hostile.big_registry(repo / "r.json", 50)
    monkeypatch.setenv("QUANTGATE_MAX_REGISTRY_BYTES", "1000")
    with pytest.raises(UserError) as e:
        load_registry(path)
    assert e.value.subject == str(path)
    assert f"the registry is {path.stat().st_size:,} bytes, over the limit of 1,000 bytes" in str(e.value)
    assert "QUANTGATE_MAX_REGISTRY_BYTES=N (default 67,108,864)" in str(e.value)
    monkeypatch.delenv("QUANTGATE_MAX_REGISTRY_BYTES")
    monkeypatch.setattr(limits, "MAX_REGISTRY_ENTRIES", 49)
    with pytest.raises(
        UserError, match=r"models: lists 50 models, over the limit of 49.*QUANTGATE_MAX_REGISTRY_ENTRIES"
    ):
        load_registry(path)
    monkeypatch.setattr(limits, "MAX_REGISTRY_ENTRIES", 50)
    assert len(load_registry(path).entries) == 50


# -- 4. non-regular files and special JSON ----------------------------------------------------


def test_named_pipes_are_refused_without_opening(repo):
    pipe = hostile.fifo(repo / "p")
    cases = [
        (load_registry, "registry"),
        (read_npz, "calibration set"),
        (Results.read, "results"),
        (load_model, "model"),
        (kind_of, "calibration source"),
    ]
    for fn, what in cases:
        with pytest.raises(UserError) as e:
            within(5, fn, pipe)
        assert str(e.value) == f"{pipe}: is a named pipe (FIFO), not a regular file; pass the {what} file itself"


def test_symlink_loops_are_one_line(repo):
    loop = hostile.symlink_loop(repo / "loop.json")
    for fn in (load_registry, read_npz, Results.read, load_model, kind_of):
        with pytest.raises(UserError, match=f"{loop}: is a symlink loop, not a regular file"):
            fn(loop)
    hostile.symlink_loop(repo / "loop.onnx")
    reg = load_registry(
        write_registry(repo / "r.json", [{"id": "a", "onnx": "loop.onnx"}, {"id": "b", "onnx": "m\u0000.onnx"}])
    )
    a, b = (e.problems[0] for e in reg.entries)
    assert (a.where, a.line) == ("models[0].onnx", 6) and "cannot be resolved (a symlink loop)" in a.message  # its line
    assert b.where == "models[1].onnx" and "embedded null byte" in b.message and "\\x00" in str(b)
    with pytest.raises(UserError, match="cannot be resolved \\(a symlink loop\\)"):
        reg.find_by_file(repo / "loop.onnx")


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("1e999", "1e999 is too large for a number (it reads as infinity)"),
        ("9" * 5000, "an integer of 5,000 digits is too long"),
    ],
)
def test_numbers_json_does_not_have_are_refused_at_their_line(repo, value, fragment):
    """Refused in the entry that holds them, at their line: the other entries are still gated."""
    path = repo / "r.json"
    path.write_text(
        '{"models": [\n  {"id": "a", "onnx": "m.onnx"},\n  {"id": "b", "onnx": "m.onnx",\n'
        f'   "quant_accuracy_budget_plcc": {value}}}]}}\n'
    )
    reg = load_registry(path)
    a, b = reg.entries
    assert not a.problems and len(b.problems) == 1
    problem = b.problems[0]
    assert (problem.line, problem.where) == (4, "models[1].quant_accuracy_budget_plcc")
    assert fragment in str(problem) and "write a" in str(problem)
    with pytest.raises(UserError) as e:  # the top level is the document itself: refused whole
        path.write_text(f'{{"models": [], "x": {value}}}')
        load_registry(path)
    assert fragment in str(e.value) and e.value.field == "x"


def test_a_string_that_says_nan_is_only_a_string(repo):
    (repo / "m.onnx").write_bytes(b"x")
    path = write_registry(repo / "r.json", [{"id": "NaN", "onnx": "m.onnx", "notes": "Infinity 1e999"}])
    assert load_registry(path).entries[0].id == "NaN"


def test_deep_nesting_surrogates_and_bytes_are_one_line(repo):
    path = repo / "r.json"
    path.write_text('{"models": [], "x": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(UserError, match=r":1:\d+: nested more than 64 levels deep"):
        load_registry(path)
    path.write_text('{"models": [\n{"id": "a\\ud800b", "onnx": "m.onnx"}]}')
    (e,) = load_registry(path).entries  # an escape JSON allows: kept, and shown escaped wherever it is printed
    assert e.id == "a\ud800b" and plain(e.id).encode("utf-8") == b"a\\ud800b"
    path.write_bytes(b'{"models": [\n{"id": "\xed\xa0\x80", "onnx": "m.onnx"}]}')  # a surrogate in UTF-8 bytes
    with pytest.raises(UserError, match=r"r.json:2: not UTF-8 text \(byte 0xed\)"):
        load_registry(path)


def test_strict_loads_accepts_what_json_accepts():
    text = '{"a": [1, -0, 2.5e-3, true, null, "\\ud83d\\ude00", "NaN"], "b": {"c": {}}}'
    assert loads(text) == json.loads(text)
    with pytest.raises(BadJSON) as e:
        loads('{"a": [1, 2]')
    assert e.value.fix is None and e.value.lineno == 1


def test_results_documents_are_bounded_and_strict(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": 1, "models": [], "worst_drop": NaN}')
    with pytest.raises(UserError, match=r"results\.json:1:51: worst_drop: NaN is not a JSON number; write a finite"):
        Results.read(path)
    monkeypatch.setenv("QUANTGATE_MAX_RESULTS_BYTES", "10")
    with pytest.raises(UserError, match=r"over the limit of 10 bytes.*QUANTGATE_MAX_RESULTS_BYTES"):
        Results.read(path)


def test_user_errors_stay_one_writable_line():
    e = UserError("bad\nthing\u2028here", subject="a\ud800b", fix="tab\there")
    assert str(e) == "a\\ud800b: bad\\nthing\\u2028here; tab\\there"
    str(e).encode("utf-8")


def test_every_limit_is_in_the_docs_table_with_its_variable():
    from conftest import REPO

    rows = [ln for ln in (REPO / "docs" / "cli.md").read_text().splitlines() if ln.startswith("| ")]
    bounds = [v for v in vars(limits).values() if isinstance(v, limits.Limit)]
    assert len(bounds) >= 7
    for b in bounds:
        assert any(f"`{b.env}`" in row for row in rows), b.env


def test_external_data_names_that_leave_the_folder_or_are_devices_are_never_read(tmp_path):
    """The gate digests and sizes an fp32 model's external data; only regular files in the
    model's folder count (a hostile location naming a device or an outside file is the model
    loader's error, never read here)."""
    import onnx

    from quantgate.onnxio import external_files_of, file_bytes

    fp32 = modelzoo.external_data(tmp_path / "m")
    assert [p.name for p in external_files_of(fp32)] == ["external_data.onnx.data"]
    m = onnx.load(str(fp32), load_external_data=False)
    (tmp_path / "outside.data").write_bytes(b"x" * 10)
    (tmp_path / "m" / "zero.data").symlink_to("/dev/zero")
    for i, t in enumerate(m.graph.initializer):
        for kv in t.external_data:
            if kv.key == "location":
                kv.value = ("zero.data", "../outside.data", "sub/../../outside.data")[i % 3]
    onnx.save(m, str(fp32))
    assert external_files_of(fp32) == []
    assert file_bytes(fp32) == fp32.stat().st_size
