"""A corpus of hostile and unlucky input, by class, run through the real `quantgate` command (and
the action's command with the runner's environment). Every case checks what a user, or an
attacker, would see: the right exit code, one line naming what is wrong, no traceback, inputs
byte-identical afterwards, no secret in any output, every other model's row still there.

Classes: workflow commands and terminal tricks in ids; markdown injection and mentions; the
token in every form it can be given; paths out of the repository and into .git; stdout,
devices and FIFOs as outputs; read-only outputs; interrupted producers; broken results files.
The registry-level classes (bombs, NaN, nesting, FIFO registries, size limits) are in
test_bounded_input_cli.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hostile
import modelzoo
from conftest import assert_one_line_error, require_tool, run_cli, write_registry
from quantgate.produce.dynamic import quantize_dynamic

TOKEN = "ghs_HOSTILEtestTOKEN0123456789abcdef"

HOSTILE_IDS = [
    "x\n::stop-commands::deadbeef",  # would silence quantgate's own annotations
    "y\n::add-mask::quantgate",  # would hide words from the log
    "z\n::error file=model/evil.json,line=1::forged",  # a fake annotation
    "w\r[PASS ] w",  # a carriage return that overwrites the [FAIL ] tag on a terminal
    "v\x1b[2K\x1b[1Gcleared",  # an escape sequence that clears the line
    "u\u202egnp.live",  # a bidi override
    "t\ud800",  # a lone surrogate: not encodable as UTF-8
    "s|fake|row|`code`\n| injected | row |",  # markdown table breakers
    "_@octocat_ and x.@org/team",  # mentions in disguise
    "r##[stop-commands]tok",  # the runner's older command form, obeyed anywhere in a line
]


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts and not p.name.startswith("r.")
    }


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """A repository with one good MLP and its dynamic sidecar."""
    root = tmp_path_factory.mktemp("hostile")
    (root / ".git").mkdir()
    fp32 = modelzoo.mlp(root, name="good")
    quantize_dynamic(fp32)
    return root


def _registry(root: Path, hostile_ids: list[str], name="registry.json", **fields) -> Path:
    rows = [{"id": "good", "onnx": "good.onnx", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5}]
    rows += [{"id": i, "onnx": "good.onnx", "quant_mode": "dynamic", **fields} for i in hostile_ids]
    return write_registry(root / name, rows)


def _assert_no_forged_lines(text: str) -> None:
    """Every line that starts a workflow command is one quantgate means (an annotation titled
    `quantgate...`, a step output warning, the token mask), no other line holds `##[`, and no
    line holds a raw CR or ESC."""
    assert hostile.forged_lines(text) == []


def test_hostile_ids_never_start_a_line_on_the_terminal(zoo):
    reg = _registry(zoo, HOSTILE_IDS)
    before = _digest_tree(zoo)
    proc = run_cli("gate", "--registry", reg, "--samples", "32", cwd=zoo)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    _assert_no_forged_lines(proc.stdout + proc.stderr)
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    assert len(rows) == 1 + len(HOSTILE_IDS)  # one line per model, the good one included
    assert "[PASS ] good (dynamic)" in proc.stdout
    assert "x\\n::stop-commands::deadbeef" in proc.stdout and "w\\r[PASS ] w" in proc.stdout
    assert "\\ud800" in proc.stdout and "\\u202e" in proc.stdout
    assert _digest_tree(zoo) == before


def test_hostile_ids_in_the_action_annotations_summary_and_outputs(zoo, tmp_path):
    _registry(zoo, HOSTILE_IDS, name="reg2.json", quant_accuracy_budget_plcc=0.0)
    files = tmp_path / "runner"
    files.mkdir()
    (files / "out").write_text("")
    (files / "summary").write_text("")
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(zoo),
        "GITHUB_OUTPUT": str(files / "out"),
        "GITHUB_STEP_SUMMARY": str(files / "summary"),
        "INPUT_REGISTRY": "reg2.json",
        "INPUT_SAMPLES": "32",
        "INPUT_COMMENT": "false",
        "INPUT_OUT_JSON": "r.action.json",
        "INPUT_MARKDOWN_OUT": "r.action.md",
    }
    proc = run_cli("action", cwd=zoo, env=env, clean_env=True)
    assert proc.returncode == 1, proc.stderr  # the hostile rows are over their budget of 0
    assert "Traceback" not in proc.stdout + proc.stderr
    _assert_no_forged_lines(proc.stdout + proc.stderr)
    errors = [ln for ln in proc.stdout.splitlines() if ln.startswith("::error ")]
    assert len(errors) == len(HOSTILE_IDS)  # every hostile model annotated, none silenced
    summary = (files / "summary").read_text(encoding="utf-8")
    table = [ln for ln in summary.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + 1 + len(HOSTILE_IDS)  # the header, one row per model: nothing injected
    widths = {len(ln.replace("\\|", "").strip("|").split("|")) for ln in table}
    assert widths == {table[0].count("|") - 1}  # every row as wide as the header: no pipe added a column
    assert "@octocat" not in summary and "@org/team" not in summary
    assert json.loads((zoo / "r.action.json").read_text())["counts"]["total"] == 1 + len(HOSTILE_IDS)


@pytest.mark.parametrize("form", ["option", "input", "env"])
def test_the_token_reaches_no_file_and_no_log(zoo, tmp_path, form):
    _registry(zoo, [], name="reg3.json")
    files = tmp_path / "runner"
    files.mkdir()
    for n in ("out", "summary"):
        (files / n).write_text("")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 3}}))
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(zoo),
        "GITHUB_OUTPUT": str(files / "out"),
        "GITHUB_STEP_SUMMARY": str(files / "summary"),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "octo/models",
        "GITHUB_API_URL": "http://127.0.0.1:9",  # nothing listens: the comment fails, the verdict stands
        "QUANTGATE_GITHUB_DEADLINE": "3",  # and its retries give up soon
        "INPUT_REGISTRY": "reg3.json",
        "INPUT_SAMPLES": "32",
        "INPUT_OUT_JSON": "r.token.json",
        "INPUT_MARKDOWN_OUT": "r.token.md",
    }
    args = ["action"]
    if form == "option":
        args += ["--github-token", TOKEN]
    elif form == "input":
        env["INPUT_GITHUB_TOKEN"] = TOKEN
    else:
        env["GITHUB_TOKEN"] = TOKEN
    proc = run_cli(*args, cwd=zoo, env=env, clean_env=True)
    assert proc.returncode == 0, proc.stderr
    logs = "\n".join(ln for ln in (proc.stdout + proc.stderr).splitlines() if not ln.startswith("::add-mask::"))
    if form != "env":  # an explicit token is masked for the runner before anything else is printed
        assert proc.stdout.startswith(f"::add-mask::{TOKEN}\n")
    outputs = [zoo / "r.token.json", zoo / "r.token.md", files / "out", files / "summary"]
    outputs += [p for p in zoo.rglob("quantgate-comment*")]
    for text in [logs, *(p.read_text(encoding="utf-8") for p in outputs if p.is_file())]:
        assert TOKEN not in text and TOKEN[4:20] not in text
    doc = json.loads((zoo / "r.token.json").read_text())
    assert doc["run_provenance"]["command"][-1:] != [TOKEN]
    if form == "option":
        assert doc["run_provenance"]["command"][-2:] == ["--github-token", "***"]


def test_markdown_output_escapes_like_the_comment(zoo):
    reg = _registry(zoo, ["a|b", "c`d`e", "f\ng"], name="reg4.json")
    proc = run_cli("gate", "--registry", reg, "--samples", "32", "--markdown-out", "-", cwd=zoo)
    assert proc.returncode == 0, proc.stderr
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + 4
    assert {len(ln.replace("\\|", "").strip("|").split("|")) for ln in table} == {table[0].count("|") - 1}
    assert "[PASS ]" not in proc.stdout and "[PASS ] good" in proc.stderr  # the lines went to stderr


def test_a_sidecar_symlinked_out_of_the_repository_is_refused(zoo, tmp_path):
    outside = tmp_path / "secret.int8.onnx"
    outside.write_bytes((zoo / "good.int8.onnx").read_bytes())
    fp32 = zoo / "linked.onnx"
    fp32.write_bytes((zoo / "good.onnx").read_bytes())
    (zoo / "linked.int8.onnx").symlink_to(outside)
    try:
        reg = write_registry(
            zoo / "reg5.json",
            [
                {"id": "good", "onnx": "good.onnx", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5},
                {"id": "linked", "onnx": "linked.onnx", "quant_mode": "dynamic"},
            ],
        )
        proc = run_cli("gate", "--registry", reg, "--samples", "32", "--json-out", zoo / "r.5.json", cwd=zoo)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        rows = {r["id"]: r for r in json.loads((zoo / "r.5.json").read_text())["models"]}
        assert rows["good"]["status"] == "pass"
        assert rows["linked"]["status"] == "error" and "leads outside the repository" in rows["linked"]["reason"]
        assert outside.name not in json.dumps(rows["linked"]["int8_path"])  # no digest or path of it published
        proc = run_cli("validate", "--registry", reg, cwd=zoo)
        assert proc.returncode == 2 and "models[1].onnx" in proc.stderr
    finally:
        (zoo / "linked.int8.onnx").unlink()
        fp32.unlink()


@pytest.mark.parametrize("option", ["--json-out", "--markdown-out"])
def test_outputs_never_land_in_dot_git(zoo, option):
    config = zoo / ".git" / "config"
    config.write_text("[core]\n")
    proc = run_cli(
        "gate",
        "--registry",
        _registry(zoo, [], name="reg6.json"),
        "--samples",
        "32",
        option,
        zoo / ".git" / "config",
        cwd=zoo,
    )
    line = assert_one_line_error(proc, ".git/config", "never writes to")
    assert "write the file somewhere else" in line and config.read_text() == "[core]\n"


def test_a_fifo_output_is_written_to_not_replaced(zoo, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    proc = run_cli(
        "gate", "--registry", _registry(zoo, [], name="reg7.json"), "--samples", "32", "--markdown-out", fifo, cwd=zoo
    )
    reader.join(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode) and got and "| `good` |" in got[0]


def test_a_read_only_output_folder_is_one_line(zoo, tmp_path):
    """A folder the user cannot write: mode 555 for a user; root writes through modes, so as root
    the folder is a tmpfs mounted read-only in a mount namespace of the test's own."""
    ro = tmp_path / "ro"
    ro.mkdir()
    argv = ["gate", "--registry", str(_registry(zoo, [], name="reg8.json")), "--samples", "32"]
    argv += ["--json-out", str(ro / "r.json")]
    if os.geteuid() != 0:
        ro.chmod(0o555)
        proc = run_cli(*argv, cwd=zoo)
    else:
        prefix = hostile.mount_namespace()
        require_tool(prefix is not None, "NO mount namespace here (unshare): the read-only folder case did NOT run")
        assert prefix is not None
        cmd = hostile.with_tmpfs(prefix, ro, "ro", [sys.executable, "-m", "quantgate", *argv])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=zoo)
    assert_one_line_error(proc, str(ro / "r.json"), "cannot be written")


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(zoo, tmp_path):
    full = Path("/dev/full")
    require_tool(full.exists(), "NO /dev/full here: the full-disk case did NOT run")
    # /dev/full is a device: written to in place, and every write fails with ENOSPC
    proc = run_cli(
        "gate", "--registry", _registry(zoo, [], name="reg9.json"), "--samples", "32", "--json-out", full, cwd=zoo
    )
    assert_one_line_error(proc, "/dev/full", "cannot be written")


def test_an_interrupted_producer_leaves_no_temporary_file_or_folder(tmp_path):
    (tmp_path / ".git").mkdir()
    fp32 = modelzoo.big_mlp(tmp_path, sizes=(1024, 2048, 2048, 16))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantgate", "ptq-dynamic", str(fp32)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith("quantgate-") for p in scratch.iterdir()):
        time.sleep(0.02)  # until it is quantising in its temporary folder
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "quantgate: terminated" in err, err
    assert "Traceback" not in err
    assert not [p for p in scratch.iterdir() if p.name.startswith("quantgate-")]  # its temporary folder is gone
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in leftovers if n not in before and n != "big_mlp.int8.onnx"] == []  # no hidden .tmp file


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"models": "x"}', b"\xff\xfe", b"[" * 200_000])
def test_a_broken_results_file_given_to_comment_is_one_line(tmp_path, content):
    bad = tmp_path / "results.json"
    bad.write_bytes(content)
    proc = run_cli("comment", "--results", bad, "--mode", "off", "--body-out", tmp_path / "b.md", cwd=tmp_path)
    assert_one_line_error(proc, str(bad))
    assert bad.read_bytes() == content and not (tmp_path / "b.md").exists()


def test_fifos_and_symlink_loops_where_the_runner_or_a_user_names_a_file(tmp_path, zoo):
    fifo = tmp_path / "event.fifo"
    os.mkfifo(fifo)
    results = tmp_path / "r.json"
    assert (
        run_cli(
            "gate",
            "--registry",
            _registry(zoo, [], name="reg10.json"),
            "--samples",
            "32",
            "--json-out",
            results,
            cwd=zoo,
        ).returncode
        == 0
    )
    env = {"GITHUB_EVENT_PATH": str(fifo), "GITHUB_REPOSITORY": "octo/models"}
    assert_one_line_error(
        run_cli("comment", "--results", results, env=env, cwd=tmp_path, timeout=60), str(fifo), "named pipe"
    )
    assert_one_line_error(
        run_cli("comment", "--from-artifact", fifo, "--repo", "octo/models", "--pr", "1", cwd=tmp_path, timeout=60),
        str(fifo),
        "named pipe",
    )
    (tmp_path / "a.onnx").symlink_to(tmp_path / "b.onnx")
    (tmp_path / "b.onnx").symlink_to(tmp_path / "a.onnx")
    assert_one_line_error(
        run_cli("gate", "a.onnx", "--registry", "none.json", cwd=tmp_path, timeout=60), "a.onnx", "cannot be resolved"
    )
