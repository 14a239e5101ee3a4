"""Editing a registry row in place (`jsonedit.patch`) and the commands quantgate suggests
(`advice`): every other byte stays, and every hint is a command that runs for that entry."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from quantgate.advice import better_command, reproduce_command
from quantgate.jsonedit import REMOVE, patch
from quantgate.registry import load_registry
from quantgate.results import Coverage

TEXT = """{
\t"models": [
\t\t{"id": "a", "onnx": "a.onnx", "quant_mode": "dynamic", "license": "MIT",\r
\t\t "notes": "kept"},
\t\t{
\t\t\t"id": "b",
\t\t\t"onnx": "b.onnx"
\t\t}
\t]
}
"""


def test_patch_sets_lists_removes_and_keeps_every_other_byte():
    new = patch(
        Path("r.json"), TEXT, 0, {"quant_mode": "static", "quant_nodes_to_exclude": ["n1", "n/2"], "notes": REMOVE}
    )
    doc = json.loads(new)["models"][0]
    assert doc == {
        "id": "a",
        "onnx": "a.onnx",
        "quant_mode": "static",
        "quant_nodes_to_exclude": ["n1", "n/2"],
        "license": "MIT",
    }
    # the removed last member takes the line break before it along; the first line is untouched
    assert new.split("\n")[:2] == TEXT.split("\n")[:2]
    assert new.split("\n")[-7:] == TEXT.split("\n")[-7:]  # the second row and the tail, byte for byte
    # removing the only member of a row, and a field that is not there
    assert json.loads(patch(Path("r.json"), '{"models": [{"id": "x"}]}', 0, {"id": REMOVE}))["models"] == [{}]
    assert patch(Path("r.json"), TEXT, 1, {"quant_nodes_to_exclude": REMOVE}) == TEXT
    b = json.loads(patch(Path("r.json"), TEXT, 1, {"quant_mode": "qat"}))["models"][1]
    assert b == {"id": "b", "onnx": "b.onnx", "quant_mode": "qat"}


def test_hints_are_whole_commands_for_the_entry(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "m dir").mkdir()
    reg = tmp_path / "m dir" / "reg.json"
    reg.write_text(
        json.dumps(
            {
                "models": [
                    {"id": "s", "onnx": "s.onnx", "quant_mode": "static", "quant_calibration_set": "cal/s.npz"},
                    {"id": "d", "onnx": "d.onnx", "quant_mode": "dynamic"},
                    {"id": "q", "onnx": "q.onnx", "quant_mode": "qat", "quant_qat_config": "q.yaml"},
                ]
            }
        )
    )
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "s.npz").write_bytes(b"")  # the set exists: the producer is the fix
    r = load_registry(reg)
    s, d, q = (r.get(i) for i in "sdq")
    cmd = shlex.split(reproduce_command(s, reg))
    assert cmd[:2] == ["quantgate", "ptq-static"] and cmd[2].endswith("m dir/s.onnx")
    assert cmd[cmd.index("-c") + 1].endswith("cal/s.npz") and cmd[cmd.index("--registry-id") + 1] == "s"
    assert cmd[cmd.index("--registry") + 1] == str(reg)
    assert shlex.split(reproduce_command(d, reg))[:2] == ["quantgate", "ptq-dynamic"]
    name_only = Coverage(5, 2, 5024, 272, 0.054, {"Conv": 3})
    assert shlex.split(reproduce_command(d, reg, name_only))[:3] == ["quantgate", "auto", "d"]
    qcmd = shlex.split(reproduce_command(q, reg))
    assert qcmd[:3] == ["quantgate", "qat", "--config"] and qcmd[3].endswith("q.yaml") and "--output" in qcmd
    assert better_command(s, reg) == f"quantgate auto s --registry {shlex.quote(str(reg))}"
    (tmp_path / "cal" / "s.npz").unlink()  # no set yet: auto makes one
    assert shlex.split(reproduce_command(s, reg))[:3] == ["quantgate", "auto", "s"]


def test_a_hint_for_a_name_with_a_line_break_is_one_runnable_line(tmp_path):
    import subprocess

    (tmp_path / ".git").mkdir()
    reg = tmp_path / "reg.json"
    reg.write_text(json.dumps({"models": [{"id": "x\ny", "onnx": "m.onnx", "quant_mode": "dynamic"}]}))
    cmd = reproduce_command(load_registry(reg).get("x\ny"), reg)
    assert "\n" not in cmd
    words = subprocess.run(["bash", "-c", f"printf '%s\\0' {cmd}"], capture_output=True, text=True).stdout.split("\0")
    assert words[words.index("--registry-id") + 1] == "x\ny"  # bash reads the id back as it is
