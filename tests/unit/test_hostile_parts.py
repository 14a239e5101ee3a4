"""Hostile input, round 3, at the parts that stop it: repeated JSON keys however they are spelt,
log lines the Actions runner cannot obey, shell words that stay on one line, the action's models
input read back from what the comment writes, files put back when a later write fails, and the
registry's edit lock. Generated inputs (hypothesis) where a rule must hold for any text."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import hostile
from conftest import require_tool
from quantgate import strictjson
from quantgate.action.settings import parse_ids
from quantgate.errors import UserError
from quantgate.paths import all_or_nothing, atomic_write_text
from quantgate.registry_edit import locked
from quantgate.report.comment import models_input
from quantgate.text import log_line, shell_word

# Text as a registry or an input may hold it: any code point but NUL (no file name, argument or
# environment variable holds one) and lone surrogates (kept escaped elsewhere: test_bounded_input).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)


@pytest.mark.parametrize(
    ("text", "where", "line"),
    [
        ('{"a": 1,\n "a": 2}', "a", 2),
        ('{"ab": 1, "a\\u0062": 2}', "ab", 1),  # the same key spelt with an escape
        ('{"m": [1, [2], {"k": 1,\n\n "k": 2}]}', "m[2].k", 3),
        ('{"x": {"y": [{}, {"z": 0, "z": 0}]}}', "x.y[1].z", 1),
        ('{"s": "\\"a\\": 1, \\"a\\": 2"}', None, None),  # inside a string: no key at all
    ],
)
def test_a_repeated_key_is_found_at_its_repeat(text, where, line):
    data, bad = strictjson.loads_keeping(text)
    if where is None:
        assert bad == [] and strictjson.loads(text) == data
        return
    (found,) = bad
    assert (found.where, found.lineno) == (where, line)
    with pytest.raises(strictjson.BadJSON, match="repeated"):
        strictjson.loads(text)


@pytest.mark.parametrize(
    ("text", "what", "col"),
    [
        ("NaN", "NaN is not a JSON number", 1),
        (" -Infinity", "-Infinity is not a JSON number", 2),
        ("  1e999", "1e999 is too large for a number (it reads as infinity)", 3),
        ("-" + "9" * 5000, "an integer of 5,000 digits is too long", 1),
    ],
)
def test_a_refused_value_that_is_the_whole_document(text, what, col):
    _data, bad = strictjson.loads_keeping(text)
    (found,) = bad
    assert (found.msg, found.lineno, found.colno, found.where, found.path) == (what, 1, col, "(top level)", [])
    with pytest.raises(strictjson.BadJSON, match="top level"):
        strictjson.loads(text)


def test_a_refused_value_is_left_out_and_the_rest_kept():
    data, bad = strictjson.loads_keeping('{"a": [1, NaN],\n "b": 1e999, "c": 2}')
    assert data == {"a": [1, None], "c": 2}
    assert [(b.where, b.lineno, b.colno) for b in bad] == [("a[1]", 1, 11), ("b", 2, 7)]


def test_a_lone_surrogate_is_refused_at_its_escape_and_a_pair_is_not():
    text = '{"a": ["ok", "x\\ud800y"]}'
    with pytest.raises(strictjson.BadJSON, match="lone surrogate") as e:
        strictjson.loads(text)
    assert (e.value.where, e.value.lineno, e.value.colno) == ("a[1]", 1, 16)
    assert strictjson.loads(text, surrogates=True) == {"a": ["ok", "x\ud800y"]}
    assert strictjson.loads('["\\ud83d\\ude00"]') == ["\U0001f600"]


@settings(max_examples=300, deadline=None)
@given(TEXT)
@example("::stop-commands::deadbeef")
@example(" \u2003::error file=a,line=1::forged")
@example("x ##[add-mask]quantgate")
def test_no_log_line_is_a_workflow_command(text):
    shown = log_line(text)
    assert "\n" not in shown and "\r" not in shown
    assert hostile.forged_lines(shown) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_a_shell_word_is_one_line_that_bash_reads_back(text):
    word = shell_word(text)
    assert "\n" not in word and "\r" not in word and word.isprintable()
    out = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, timeout=30, check=True).stdout
    assert out.decode("utf-8") == text


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXT.filter(lambda t: t.strip() == t and t != ""), min_size=1, max_size=5))
def test_the_models_input_the_comment_writes_selects_exactly_its_ids(ids):
    assert parse_ids(models_input(ids)) == ids


def test_a_failed_block_puts_every_file_back_and_leaves_nothing_else(tmp_path):
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"before")
    with pytest.raises(RuntimeError), all_or_nothing(old, new), all_or_nothing(old):  # nested, as producers are
        atomic_write_text(old, "after")
        atomic_write_text(new, "created")
        raise RuntimeError("a later write failed")
    assert old.read_bytes() == b"before" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]
    with all_or_nothing(old, new):
        atomic_write_text(old, "after")
    assert old.read_text() == "after" and sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]


def test_a_producer_checks_its_report_path_before_any_work(tmp_path, monkeypatch):
    import modelzoo
    from quantgate.produce import dynamic, pipeline

    fp32 = modelzoo.mlp(tmp_path, name="m")
    (tmp_path / "afile").write_text("x\n")

    def no_work(*_a, **_k):
        raise AssertionError("the model was prepared before the report path was checked")

    monkeypatch.setattr(pipeline, "preflight", no_work)
    with pytest.raises(UserError, match="is a file, not a folder"):
        dynamic.quantize_dynamic(fp32, report_out=tmp_path / "afile" / "r.json")
    assert not (tmp_path / "m.int8.onnx").exists()


def test_a_report_that_cannot_be_written_takes_the_new_sidecar_back(tmp_path):
    """The library's own promise, without the CLI around it: /dev/full passes the checks (a device
    is written in place) and fails the write, after the new sidecar was in place."""
    import modelzoo
    from quantgate.produce.config import QuantConfig
    from quantgate.produce.dynamic import quantize_dynamic

    require_tool(os.path.exists("/dev/full"), "NO /dev/full here: the case did NOT run")
    fp32 = modelzoo.mlp(tmp_path, name="m")
    sidecar = quantize_dynamic(fp32).output
    before = sidecar.read_bytes()
    with pytest.raises(UserError, match="cannot be written"):
        quantize_dynamic(fp32, config=QuantConfig(per_channel=False), report_out="/dev/full")
    assert sidecar.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx", "m.onnx"]


def test_an_edit_waits_for_the_lock_then_gives_up_in_one_line(tmp_path):
    reg = tmp_path / "registry.json"
    reg.write_text("{}")
    said = []
    with locked(reg):
        started = time.monotonic()
        with (
            pytest.raises(UserError, match="another process has been editing the registry"),
            locked(reg, wait=0.3, waiting=lambda: said.append(True)),
        ):
            pass
        assert time.monotonic() - started >= 0.3 and said == [True]
    with locked(reg, wait=0.3, waiting=lambda: said.append(False)):  # released: no wait
        pass
    assert said == [True] and os.listdir(tmp_path) == ["registry.json"]  # no lock file left


def test_docs_count_the_hostile_corpus_as_the_script_prints_it():
    import sys

    from conftest import REPO

    proc = subprocess.run(
        [sys.executable, "bench/hostile_corpus.py", "--tests"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    printed = dict(ln.rsplit(": ", 1) for ln in proc.stdout.splitlines())
    docs = (REPO / "docs" / "cli.md").read_text()
    for name, count in printed.items():
        shown = f"{count}" if name == "total" else f"`{name}`, {count}"
        assert shown in docs, (name, count)


def test_auto_does_not_write_over_a_registry_edited_since_it_read_it(tmp_path):
    from quantgate.auto import apply

    reg = tmp_path / "registry.json"
    old = '{"models": [\r\n {"id": "a", "onnx": "a.onnx"}]}\r\n'  # CRLF line ends, as auto keeps them
    new = old.replace('"a.onnx"', '"a.onnx", "quant_mode": "dynamic"')
    reg.write_bytes(old.replace('"a"', '"a", "owner": "another edit"').encode())  # landed after auto read
    with pytest.raises(UserError, match="changed while quantgate auto ran"):
        apply.write([], reg, new, old)
    assert b"another edit" in reg.read_bytes()
    reg.write_bytes(old.encode())
    assert apply.write([], reg, new, old) == [reg] and reg.read_bytes() == new.encode()
