"""What a user of pytest, ruff or gh expects from the command line, through the real `quantgate`
command: pipes and standard input, quiet reports, -q/-v, colour, option names, the fix named in
full, the registry line on every warning."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import numpy as np
import pytest

import modelzoo
from conftest import assert_one_line_error, run_cli, write_registry
from quantgate.produce.dynamic import quantize_dynamic


@pytest.fixture
def mixed(repo):
    """Two gated MLPs (dynamic) and three fp32-only entries: a registry like a real one."""
    models = []
    for name in ("a", "b"):
        fp32 = modelzoo.mlp(repo, name=name)
        quantize_dynamic(fp32)
        models.append({"id": name, "onnx": fp32.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5})
    plain = modelzoo.mlp(repo, name="plain")
    models += [{"id": f"fp32_{i}", "onnx": plain.name} for i in range(3)]
    (repo / "pyproject.toml").write_text('[tool.quantgate]\nregistry = "registry.json"\n')  # no --registry below
    return write_registry(repo / "registry.json", models)


def _popen(*args, cwd, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quantgate", *map(str, args)], cwd=cwd, text=True, **kw)


def test_a_closed_pipe_is_never_a_verdict_and_the_run_still_finishes(repo, mixed):
    """`quantgate gate | head -1`: the reader leaves after one line; every model is still
    measured, the results file written, and the exit code is 141, never 1 (over budget)."""
    tight = json.loads(mixed.read_text())
    tight["models"][1]["quant_accuracy_budget_plcc"] = 0.0  # b is over budget: a verdict of 1
    mixed.write_text(json.dumps(tight))
    out = repo / "r.json"
    proc = _popen(
        "gate", "--samples", "32", "--json-out", out, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    err = proc.stderr.read()
    code = proc.wait(timeout=300)
    assert first.startswith("[PASS ] a (dynamic)")
    assert code == 141, (code, err)
    assert "Traceback" not in err and "BrokenPipe" not in err
    doc = json.loads(out.read_text())
    assert [m["id"] for m in doc["models"]] == ["a", "b", "fp32_0", "fp32_1", "fp32_2"]
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1  # the verdict is in the file, not the exit code

    # the shell pipeline a user types: the same, and pipefail sees 141
    shell = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {sys.executable} -m quantgate gate --samples 32 | head -1"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shell.returncode == 141 and shell.stdout.count("\n") == 1, shell


def test_a_producer_whose_reader_leaves_still_records_the_digest(repo):
    fp32 = modelzoo.mlp(repo)
    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic"}])
    proc = _popen("ptq-dynamic", fp32, "--registry", reg, "--registry-id", "m", cwd=repo, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    assert proc.wait(timeout=300) == 141
    assert json.loads(reg.read_text())["models"][0]["int8_sha256"]  # the run finished after the pipe closed


def test_comment_body_on_stdout_is_the_body_alone_and_results_come_from_stdin(repo, mixed):
    results = run_cli("gate", "--samples", "32", "--json-out", "-", cwd=repo)
    assert results.returncode == 0, results.stderr
    proc = run_cli("comment", "--results", "-", "--mode", "off", "--body-out", "-", input=results.stdout, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("<!-- quantgate:comment registry=registry.json -->\n")
    assert "quantgate: comment off" not in proc.stdout  # the status line went to stderr
    assert proc.stderr.strip() == "quantgate: comment off; body written to standard output"
    assert not (repo / "quantgate-comment.md").exists()

    # --mode off without --body-out writes where --help says: quantgate-comment.md
    res = repo / "r.json"
    res.write_text(results.stdout)
    off = run_cli("comment", "--results", res, "--mode", "off", cwd=repo)
    assert off.returncode == 0 and "body written to quantgate-comment.md" in off.stdout
    assert (repo / "quantgate-comment.md").read_text().startswith("<!-- quantgate:comment")

    # an empty standard input: one line that names standard input and does not tell the user to do what they did
    empty = run_cli("comment", "--results", "-", "--mode", "off", input="", cwd=repo)
    line = assert_one_line_error(empty, "standard input", "quantgate gate --json-out - | quantgate comment --results -")
    assert "write one with" not in line


def test_registry_from_stdin_is_read_from_the_current_folder(repo, mixed):
    text = mixed.read_text()
    proc = run_cli("gate", "--registry", "-", "--samples", "32", "a", input=text, cwd=repo)
    assert proc.returncode == 0 and proc.stdout.startswith("[PASS ] a (dynamic)"), proc.stderr
    bad = run_cli("validate", "--registry", "-", input=text.replace('"a.onnx"', '"gone.onnx"'), cwd=repo)
    assert bad.returncode == 2 and "<stdin>:" in bad.stderr and "models[0].onnx: file not found" in bad.stderr
    edit = run_cli("ptq-dynamic", "a.onnx", "--registry", "-", "--registry-id", "a", input=text, cwd=repo)
    assert_one_line_error(edit, "--registry -", "cannot be edited")


def test_fp32_entries_are_one_count_line_unless_show_skipped(repo, mixed):
    proc = run_cli("gate", "--samples", "32", "--markdown-out", "r.md", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]  # rows, not their warnings
    assert [ln[:9] for ln in lines[:2]] == ["[PASS ] a", "[PASS ] b"]
    assert lines[0].endswith("[1/2]") and lines[1].endswith("[2/2]")  # counted over the models measured
    assert "[SKIP ] 3 fp32 entries not gated (nothing to compare; --show-skipped lists them)" in lines
    assert "fp32_0" not in proc.stdout
    md = (repo / "r.md").read_text()
    assert "➖ 3 fp32 entries not gated" in md and "fp32_0" not in md
    line_a = mixed.read_text().splitlines().index('      "id": "a",') + 1
    assert f"- `a` (registry line {line_a}): the int8 file is" in md  # a warning names its entry's line

    listed = run_cli("gate", "--samples", "32", "--markdown-out", "r.md", "--show-skipped", cwd=repo)
    assert [ln for ln in listed.stdout.splitlines() if ln.startswith("[SKIP ]")] == [
        f"[SKIP ] fp32_{i}: quant_mode fp32: no int8 sidecar ships" for i in range(3)
    ]
    md = (repo / "r.md").read_text()
    assert all(f"`fp32_{i}`" in md for i in range(3)) and "entries not gated" not in md


def test_summary_line_says_how_long_and_where_the_results_went(repo, mixed):
    proc = run_cli("gate", "--samples", "32", "--json-out", "out/r.json", "--markdown-out", "r.md", "-q", cwd=repo)
    assert proc.returncode == 0
    (line,) = proc.stdout.splitlines()
    assert line.startswith("quantgate: PASS — 2 passed, 0 failed, 0 errored, 3 skipped; worst drop ")
    assert "; done in " in line and line.endswith("s; results in out/r.json and r.md")
    assert (repo / "out" / "r.json").is_file()


def test_measuring_line_shows_on_a_terminal_only(repo, mixed):
    """`[i/N] measuring ID…` is rewritten in place on a terminal and cleared before each row;
    a log (no terminal) never gets it."""
    master, slave = pty.openpty()
    proc = _popen("gate", "--samples", "32", cwd=repo, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out, _ = proc.communicate(timeout=300)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    tty = b"".join(chunks).decode()
    assert "\r\x1b[K[1/2] measuring a…" in tty and "\r\x1b[K[2/2] measuring b…" in tty
    assert tty.endswith("\r\x1b[K") and "measuring fp32" not in tty  # cleared; fp32 entries are not measured
    assert "measuring" not in out
    logged = run_cli("gate", "--samples", "32", cwd=repo)
    assert "measuring" not in logged.stderr + logged.stdout


def test_quiet_and_verbose_mean_the_same_on_every_command(repo):
    fp32 = modelzoo.mlp(repo)
    quiet = run_cli("ptq-dynamic", "mlp.onnx", "-q", cwd=repo)
    assert quiet.returncode == 0 and quiet.stdout.startswith("wrote mlp.int8.onnx (dynamic)"), quiet.stdout
    assert len(quiet.stdout.splitlines()) == 1  # the result line only: no note about the larger file
    loud = run_cli("ptq-dynamic", fp32, "-vv", cwd=repo)
    assert "  settings: per_channel=True" in loud.stdout and "  took " in loud.stdout
    assert "settings:" not in run_cli("ptq-dynamic", fp32, cwd=repo).stdout

    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic"}])
    v = run_cli("validate", "--registry", "registry.json", "-vv", cwd=repo)
    assert "  registry.json:5: m (dynamic): ok" in v.stdout, v.stdout
    assert "(dynamic): ok" not in run_cli("validate", "--registry", reg, cwd=repo).stdout
    (repo / "mlp.int8.onnx").unlink()
    broken = run_cli("validate", "--registry", reg, "-q", cwd=repo)  # -q keeps the errors
    assert broken.returncode == 2 and "models[0].quant_mode: mode 'dynamic' ships mlp.int8.onnx" in broken.stderr

    cal = modelzoo.write_npz(repo / "src.npz", x=np.random.default_rng(0).random((8, 8), dtype=np.float32))
    build = run_cli("calibrate", "build", fp32, "--from", cal, "-o", repo / "cal.npz", "--all", "-q", cwd=repo)
    assert build.returncode == 0 and build.stdout.startswith("wrote ") and len(build.stdout.splitlines()) == 1
    check = run_cli("calibrate", "check", fp32, repo / "cal.npz", "-q", cwd=repo)
    assert check.returncode == 0 and len(check.stdout.splitlines()) == 1 and ": ok — 8 sample(s)" in check.stdout


def test_colour_can_be_forced_and_no_color_wins(repo, mixed):
    def tag(*args, **env):
        proc = run_cli("gate", "--samples", "32", "a", *args, cwd=repo, env={"NO_COLOR": "", "FORCE_COLOR": "", **env})
        return proc.stdout.splitlines()[0]

    green = "\x1b[32m\x1b[1m[PASS ]"
    assert tag().startswith("[PASS ]")  # piped: plain
    assert tag("--color", "always").startswith(green)
    assert tag(FORCE_COLOR="1").startswith(green) and tag(CLICOLOR_FORCE="1").startswith(green)
    assert tag(FORCE_COLOR="0").startswith("[PASS ]")
    assert tag(FORCE_COLOR="1", NO_COLOR="1").startswith("[PASS ]")  # NO_COLOR wins, as in pytest
    assert tag("--color", "always", NO_COLOR="1").startswith(green)  # the option wins over both
    assert tag("--color", "never", FORCE_COLOR="1").startswith("[PASS ]")


def test_old_option_names_work_hidden_and_warn_once(repo, mixed):
    proc = run_cli("gate", "--samples", "32", "a", "--out-json", "r.json", "--markdown", "r.md", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "warning" in ln]
    assert warnings == [
        "quantgate: warning: --out-json is now --json-out; the old name still works and will be removed in "
        "quantgate 1.0 (docs/cli.md#option-names)",
        "quantgate: warning: --markdown is now --markdown-out; the old name still works and will be removed in "
        "quantgate 1.0 (docs/cli.md#option-names)",
    ]
    assert json.loads((repo / "r.json").read_text())["models"][0]["id"] == "a" and (repo / "r.md").is_file()
    assert "--out-json" not in run_cli("gate", "--help", cwd=repo).stdout  # hidden
    both = run_cli("gate", "a", "--out-json", "x.json", "--json-out", "y.json", cwd=repo)
    assert_one_line_error(both, "--out-json is the old name of --json-out; give one of them")


def test_the_fix_is_the_whole_command(repo):
    """The stale-sidecar error and the saturation warning name the command that fixes them, with
    its arguments, runnable as shown from where the user is; warnings carry the registry line."""
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    sub = repo / "models"
    sub.mkdir()
    reg = write_registry(
        sub / "reg.json",
        [{"id": "m", "onnx": "../mlp.onnx", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5}],
    )
    modelzoo.mlp(repo, seed=7)  # retrained: the sidecar is stale
    stale = run_cli("gate", "--registry", "models/reg.json", "--samples", "32", cwd=repo)
    fix = "re-produce it with quantgate ptq-dynamic mlp.onnx --registry-id m --registry models/reg.json"
    assert stale.returncode == 2 and fix in stale.stdout, stale.stdout
    assert run_cli(*fix.removeprefix("re-produce it with quantgate ").split(), cwd=repo).returncode == 0
    # full-range s8 weights: the saturation warning, at the entry's line, with the fixing command
    assert run_cli("ptq-dynamic", fp32, "--preset", "avx512_vnni", cwd=repo).returncode == 0
    json_reg = json.loads(reg.read_text())
    json_reg["models"][0].pop("int8_sha256", None)
    reg.write_text(json.dumps(json_reg, indent=2))
    warned = run_cli("gate", "--registry", "models/reg.json", "--samples", "32", "--json-out", "r.json", cwd=repo)
    line = next(ln for ln in warned.stdout.splitlines() if "saturate" in ln)
    at = json.loads((repo / "r.json").read_text())["models"][0]["registry_line"]
    assert reg.read_text().splitlines()[at - 1].strip() == '"id": "m",'  # the entry's own line
    assert line.lstrip().startswith(f"models/reg.json:{at}: warning: mlp.int8.onnx: its u8×s8 integer ops")
    assert line.endswith(
        "; re-produce it with 7-bit weights: quantgate ptq-dynamic mlp.onnx --registry-id m --registry models/reg.json"
    )


def test_set_mode_turns_an_fp32_entry_into_a_gated_one(repo):
    fp32 = modelzoo.mlp(repo)
    cal = modelzoo.write_npz(repo / "cal" / "m.npz", x=np.random.default_rng(0).random((16, 8), dtype=np.float32))
    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": fp32.name, "owner": "kept"}])
    before = reg.read_text()
    (repo / "pyproject.toml").write_text('[tool.quantgate]\nregistry = "registry.json"\n')
    refused = run_cli("ptq-static", fp32, "-c", cal, "--registry-id", "m", cwd=repo)
    assert_one_line_error(refused, "registry.json:5: models[0].quant_mode:", "add --set-mode to make it a static entry")
    assert reg.read_text() == before and not (repo / "mlp.int8.onnx").exists()
    proc = run_cli("ptq-static", fp32, "-c", cal, "--registry-id", "m", "--set-mode", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(reg.read_text())["models"][0]
    assert (entry["quant_mode"], entry["quant_calibration_set"], entry["owner"]) == ("static", "cal/m.npz", "kept")
    assert "registry.json: set m.quant_mode = static" in proc.stdout
    assert run_cli("gate", "--samples", "32", cwd=repo).returncode == 0
    # switching modes: the same flag, the same one-line refusal without it
    other = run_cli("ptq-dynamic", fp32, "--registry-id", "m", cwd=repo)
    assert_one_line_error(
        other, "quant_mode:", "add --set-mode to switch the entry to dynamic, or run quantgate ptq-static"
    )
    assert run_cli("ptq-dynamic", fp32, "--set-mode", cwd=repo).returncode == 2  # needs --registry-id


def test_main_commands_show_examples_in_help(repo):
    for command in (
        ["init"],
        ["validate"],
        ["gate"],
        ["ptq-dynamic"],
        ["ptq-static"],
        ["qat"],
        ["comment"],
        ["calibrate", "build"],
        ["calibrate", "check"],
    ):
        out = run_cli(*command, "--help", cwd=repo).stdout
        examples = out.split("Examples:", 1)
        assert len(examples) == 2, command
        assert f"quantgate {' '.join(command)}" in examples[1], command
