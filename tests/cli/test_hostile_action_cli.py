"""Hostile input, round 3, through the action and `quantgate comment` as the runner starts them: the
action's inputs (a token with line breaks, paths with line breaks, ids with spaces and commas, one
file named for two outputs, results files that cannot be written), the runner's log, the comment's
reproduce block, and a GitHub API that answers badly (malformed answers and payloads, a server
that sends one byte at a time). GitHub is the real HTTP server on loopback (tests/github_server.py);
disks are tmpfs mounts in a mount namespace of the test's own.

Every case checks what a user, or an attacker, would see: the exit code, one line naming what is
wrong, no traceback, no line the runner would obey that quantgate did not mean, no secret.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import hostile
from action_support import parse_output_file, runner_env
from comment_support import APP_TOKEN, REPO, SHA, TOKEN, _wr_event
from conftest import assert_one_line_error, require_tool, run_cli, write_registry
from quantgate.action import settings

QUANTGATE = [sys.executable, "-m", "quantgate"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace (a git checkout) with one good MLP and its dynamic sidecar."""
    return hostile.good_mlp_checkout(tmp_path_factory.mktemp("hostile-action"))


def _registry(w: Path, name: str, ids: list[str]) -> str:
    rows = [{"id": i, "onnx": "good.onnx", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5} for i in ids]
    write_registry(w / name, rows)
    return name


def _input(name: str) -> str:
    """The variable the runner sets for the input the library calls `name` (`INPUT_JSON-OUT`)."""
    return settings.input_env_name(settings.INPUT_NAMES.get(name, name))


def _env(w: Path, tmp_path: Path, event: str = "push", **inputs) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))}
    named = {settings.INPUT_NAMES.get(k, k): v for k, v in inputs.items()}  # the kebab-case ids action.yml declares
    env = {**base, **runner_env(w, tmp_path, event_name=event, **named)}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return env


def _action(w: Path, env: dict, argv: list[str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The action as the runner starts it (in this process, conftest.run_cli; `argv`: that command
    line in a fresh process)."""
    if argv is None:
        return run_cli("action", cwd=w, env=env, clean_env=True)
    return subprocess.run(argv, cwd=w, env=env, capture_output=True, text=True, timeout=timeout)


def _outputs(tmp_path: Path) -> dict:
    return parse_output_file((tmp_path / "file_commands" / "out").read_text())


def _cli(*args, env: dict | None = None, cwd=None, timeout: int = 60) -> subprocess.CompletedProcess:
    """`quantgate ARGS` as a user runs it, without the environment of a CI job around the tests."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_")) and k != "QUANTGATE_IMAGE"}
    return run_cli(*args, env={**base, **(env or {})}, clean_env=True, cwd=cwd, timeout=timeout)


def _errors(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("quantgate: error:")]


# --- the token --------------------------------------------------------------------------------


def test_a_token_with_line_breaks_is_masked_line_by_line_then_refused(ws, tmp_path):
    lines = ["ghs_FIRSTlineOFtheTOKEN0123", "secondLINEwouldBEinCLEAR", "::error file=x.json,line=1::forged"]
    env = _env(ws, tmp_path, "pull_request", registry=_registry(ws, "r.token.json", ["good"]))
    env[_input("github_token")] = "\n".join(lines)
    env["GITHUB_API_URL"] = "http://127.0.0.1:9"
    proc = _action(ws, env)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    masks = [ln for ln in out if ln.startswith("::add-mask::")]
    assert sorted(m.removeprefix("::add-mask::") for m in masks) == sorted(lines)  # every line hidden
    assert out[: len(masks)] == masks  # before anything else is printed
    (error,) = _errors(proc)
    assert "input github-token" in error and "line break" in error and "not shown" in error
    rest = "\n".join(ln for ln in (proc.stdout + proc.stderr).splitlines() if not ln.startswith("::add-mask::"))
    for line in lines:
        assert line not in rest and line[:12] not in rest
    assert hostile.forged_lines(proc.stdout + proc.stderr) == []
    assert not (ws / "quantgate-results.json").exists()


@pytest.mark.parametrize("bad", ["ghs_a\nb", "ghs_a b", "ghs_\x1b[2Kcleared"])
def test_comment_refuses_a_token_that_is_not_one_without_showing_it(tmp_path, results_file, bad):
    env = {"GITHUB_TOKEN": bad, "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": "http://127.0.0.1:9"}
    proc = _cli("comment", "--results", results_file, "--pr", "7", env=env, cwd=tmp_path)
    line = assert_one_line_error(proc, "GITHUB_TOKEN", "not a token")
    assert "ghs_a" not in line and "cleared" not in proc.stderr


# --- the runner's log -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out_json", "markdown_out", "registry", "working_directory"])
def test_a_path_input_with_a_line_break_is_refused_and_never_starts_a_line(ws, tmp_path, name):
    value = "r.json\n::stop-commands::deadbeef\n::error file=a,line=1::forged ##[error]legacy"
    env = _env(ws, tmp_path, registry=_registry(ws, "r.lines.json", ["good"]), comment="false")
    env[_input(name)] = value
    proc = _action(ws, env)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    (error,) = _errors(proc)
    assert settings.input_name(name) in error and "line break" in error
    assert hostile.forged_lines(proc.stdout + proc.stderr) == []
    assert not any(p.name.startswith("r.json") for p in ws.iterdir())


def test_ids_that_look_like_workflow_commands_never_start_a_line(ws, tmp_path):
    reg = _registry(ws, "r.cmd.json", ["good", "##[stop-commands]tok", " ::error::indented"])
    env = _env(ws, tmp_path, registry=reg, comment="false", samples="32", out_json="r.cmd.out.json")
    env[_input("models")] = "good\n::stop-commands::deadbeef"  # a line break separates ids; the second is unknown
    proc = _action(ws, env)
    assert proc.returncode == 2 and "no model with id '::stop-commands::deadbeef'" in proc.stderr
    assert hostile.forged_lines(proc.stdout + proc.stderr) == []
    env[_input("models")] = ""  # every model: the two hostile ids are printed in rows and annotations
    proc = _action(ws, env)
    assert proc.returncode == 0, proc.stderr
    assert hostile.forged_lines(proc.stdout + proc.stderr) == []
    assert "#\\x23[stop-commands]tok" in proc.stdout


# --- the results files ------------------------------------------------------------------------


def _unwritable(kind: str, ws: Path, tmp_path: Path) -> tuple[str, list[str] | None]:
    """(out_json value, mount prefix when the case needs a tmpfs) for one way a path fails."""
    if kind == "below a file":
        (ws / "afile").write_text("a regular file\n")
        return "afile/r.json", None
    if kind == "inside .git":
        return ".git/r.json", None
    if kind == "name too long":
        return "x" * 300 + ".json", None
    prefix = hostile.mount_namespace()
    require_tool(prefix is not None, f"NO mount namespace here (unshare): the '{kind}' case did NOT run")
    (ws / "mnt").mkdir(exist_ok=True)
    return "mnt/r.json", prefix


@pytest.mark.parametrize("kind", ["below a file", "inside .git", "name too long", "read-only mount", "full disk"])
def test_a_results_file_that_cannot_be_written_is_one_line_and_the_rest_is_kept(ws, tmp_path, kind):
    value, prefix = _unwritable(kind, ws, tmp_path)
    reg = _registry(ws, "r.write.json", ["good"])
    env = _env(ws, tmp_path, registry=reg, comment="false", samples="32", out_json=value, markdown_out="r.write.md")
    before = (ws / reg).read_bytes()
    argv = [*QUANTGATE, "action"]
    if prefix is not None:  # a tmpfs on mnt/: read-only, or a few KB that the results overfill
        options = "ro" if kind == "read-only mount" else "size=4k"
        if kind == "full disk":
            env[_input("out_json")] = "mnt/r.json"
            argv = ["bash", "-c", "head -c 4096 /dev/zero > mnt/filler; exec " + shlex.join(argv)]
        argv = hostile.with_tmpfs(prefix, ws / "mnt", options, argv)
    proc = _action(ws, env, argv)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr and "crashed" not in proc.stdout + proc.stderr
    (error,) = _errors(proc)
    assert "input json-out" in error and ("cannot be written" in error or "never writes to" in error), error
    # everything else happened: the markdown, the annotation, the summary, the outputs
    assert "| `good` |" in (ws / "r.write.md").read_text()
    assert any(ln.startswith("::error ") and "could not write a results file" in ln for ln in proc.stdout.splitlines())
    assert "| `good` |" in (tmp_path / "file_commands" / "summary").read_text()
    outputs = _outputs(tmp_path)
    assert outputs["verdict"] == "pass" and outputs["results_path"] == "" and outputs["markdown_path"] == "r.write.md"
    assert "the results JSON was not written" in proc.stdout
    assert (ws / reg).read_bytes() == before
    assert not [p for p in ws.rglob("*.tmp")]


def test_out_json_and_markdown_out_naming_one_file_is_refused(ws, tmp_path):
    env = _env(ws, tmp_path, registry=_registry(ws, "r.same.json", ["good"]), comment="false")
    env.update({_input("out_json"): "same.out", _input("markdown_out"): "./same.out"})
    proc = _action(ws, env)
    assert proc.returncode == 2
    (error,) = _errors(proc)
    assert "input markdown-out" in error and "also this run's json-out file" in error
    assert not (ws / "same.out").exists()


# --- ids with spaces and commas, and the comment's reproduce line -----------------------------


def test_ids_with_a_space_or_a_comma_are_selected_and_the_docker_line_reproduces_them(ws, tmp_path):
    reg = _registry(ws, "r.space.json", ["my model", "a,b", "other"])
    env = _env(ws, tmp_path, registry=reg, comment="false", samples="32", out_json="r.space.out.json")
    env[_input("models")] = '["my model", "a,b"]'
    proc = _action(ws, env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((ws / "r.space.out.json").read_text())
    assert [r["id"] for r in doc["models"]] == ["my model", "a,b"]
    body = tmp_path / "body.md"
    proc = _cli("comment", "--results", ws / "r.space.out.json", "--mode", "off", "--body-out", body, cwd=ws)
    assert proc.returncode == 0, proc.stderr
    (docker,) = [ln for ln in body.read_text().splitlines() if ln.startswith("docker run ")]
    words = shlex.split(docker)
    args = words[words.index("/github/workspace", words.index("-w")) + 2 :]  # after the image
    assert "--models" in args
    env = _env(ws, tmp_path, comment="false", out_json="r.space.again.json")
    proc = _action(ws, env, [*QUANTGATE, "action", *args])  # what the image's entrypoint runs
    assert proc.returncode == 0, proc.stderr
    again = json.loads((ws / "r.space.again.json").read_text())
    assert [r["id"] for r in again["models"]] == ["my model", "a,b"]
    assert [r["drop"] for r in again["models"]] == [r["drop"] for r in doc["models"]]


def test_a_models_input_that_starts_like_json_but_is_not_is_one_line(ws, tmp_path):
    env = _env(ws, tmp_path, registry=_registry(ws, "r.json-bad.json", ["good"]), comment="false")
    env[_input("models")] = '["good", 3]'
    proc = _action(ws, env)
    assert proc.returncode == 2
    (error,) = _errors(proc)
    assert "input models" in error and "JSON array" in error


def _fenced(body: str) -> tuple[list[str], list[str]]:
    """(the lines of the reproduce code block, the lines outside every code block)."""
    inside, outside, block = [], [], None
    for line in body.split("\n"):
        if line.startswith("```"):
            block = [] if block is None else None
            continue
        (inside if block is not None else outside).append(line)
    return inside, outside


def _bash_words(command: str) -> list[str]:
    """The words bash reads in `command` (one line), as bash itself splits and unquotes them."""
    script = f"set -- {command}; for a; do printf '%s\\0' \"$a\"; done"
    out = subprocess.run(["bash", "-c", script], capture_output=True, timeout=30, check=True).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


def test_names_with_a_line_break_and_a_fence_cannot_leave_the_reproduce_block(ws, tmp_path):
    evil_id = "x\n```\n**fake** @octocat"
    evil_reg = "reg\n```\n@octocat.json"
    write_registry(ws / evil_reg, [{"id": evil_id, "onnx": "good.onnx", "quant_mode": "dynamic"}])
    out = tmp_path / "r.json"
    proc = _cli("gate", evil_id, "--registry", evil_reg, "--samples", "32", "--json-out", out, cwd=ws)
    assert proc.returncode == 0, proc.stderr
    body = tmp_path / "body.md"
    proc = _cli("comment", "--results", out, "--mode", "off", "--body-out", body, cwd=ws)
    assert proc.returncode == 0, proc.stderr
    text = body.read_text(encoding="utf-8")
    assert sum(ln.startswith("```") for ln in text.split("\n")) == 2  # the block's own fences only
    inside, outside = _fenced(text)
    assert {ln.split(" ", 1)[0] for ln in inside if ln} <= {"git", "pip", "quantgate", "docker", "#"}
    prose = re.sub(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", "", "\n".join(outside))  # inline code spans out
    assert "@octocat" not in prose and "**fake**" not in prose
    gate = next(ln for ln in inside if ln.startswith(("pip ", "quantgate ")))
    gate_words = _bash_words(gate.split(" && ", 1)[-1])
    assert gate_words[gate_words.index("--registry") + 1] == evil_reg and gate_words[-1] == evil_id
    (docker,) = [ln for ln in inside if ln.startswith("docker ")]
    words = _bash_words(docker)
    assert words[words.index("--registry") + 1] == evil_reg
    assert json.loads(words[words.index("--models") + 1]) == [evil_id]


# --- a lone surrogate ------------------------------------------------------------------------


def test_a_lone_surrogate_id_reaches_the_comment(ws, tmp_path, gh):
    (ws / "r.sur.json").write_text(
        '{"models": [{"id": "t\\ud800", "onnx": "good.onnx", "quant_mode": "dynamic",'
        ' "quant_accuracy_budget_plcc": 0.5}]}\n'
    )
    event = tmp_path / "pr7.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    env = _env(ws, tmp_path, "pull_request", registry="r.sur.json", samples="32", out_json="r.sur.out.json")
    env.update(
        GITHUB_EVENT_PATH=str(event),
        GITHUB_REPOSITORY=REPO,
        GITHUB_API_URL=gh.base_url,
        **{_input("github_token"): APP_TOKEN},
    )
    proc = _action(ws, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _outputs(tmp_path)["comment"] == "created", proc.stdout + proc.stderr
    (posted,) = gh.comments_on(REPO, 7)
    assert "`t\\ud800`" in posted["body"]
    body = tmp_path / "b.md"
    proc = _cli("comment", "--results", ws / "r.sur.out.json", "--mode", "off", "--body-out", body, cwd=ws)
    assert proc.returncode == 0, proc.stderr
    assert "`t\\ud800`" in body.read_text(encoding="utf-8")


# --- a GitHub API that answers badly ---------------------------------------------------------


def _comment(results_file, tmp_path, gh, *extra, env=None, timeout=60):
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": gh.base_url, **(env or {})}
    out = tmp_path / "outcome.json"
    proc = _cli("comment", "--results", results_file, "--pr", "7", "--outcome-out", out, *extra, env=env,
                cwd=tmp_path, timeout=timeout)  # fmt: skip
    return proc, (json.loads(out.read_text()) if out.is_file() else None)


MALFORMED = {
    "comments not a list": ("GET", r"/comments$", 200, b'{"message": "a list was due"}', "not a JSON list"),
    "a comment id that is a path": ("GET", r"/comments$", 200, None, "without a numeric id"),
    "not JSON at all": ("GET", r"/comments$", 200, b"<html>an error page</html>", "not a JSON list"),
    "not HTTP at all": ("GET", r"/comments$", None, b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP answer"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_api_answer_is_one_clear_line(results_file, tmp_path, gh, case):
    method, path, status, payload, said = MALFORMED[case]
    if case == "a comment id that is a path":
        from quantgate.report.comment import marker
        from quantgate.results import Results

        mark = marker(Results.read(results_file).registry)
        c = gh.add_comment(REPO, 7, mark + "\nold", "quantgate-bot")
        c["id"] = "../../../user/keys"  # what the client would put in a DELETE or PATCH path
    else:
        raw = (
            payload
            if status is None
            else (
                f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            + payload
        )
        gh.fault(method, path, None, raw=raw, times=10)
    proc, outcome = _comment(results_file, tmp_path, gh)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith("quantgate: warning: comment not posted (failed)") and said in line, line
    assert outcome["action"] == "failed" and said in outcome["message"]
    assert not [r for r in gh.requests if r.method in ("PATCH", "DELETE", "POST")]


WR_PAYLOADS = {  # a field of the triggering run with a value of another type than GitHub sends
    "head_repository a string": {"head_repository": "forker/models"},
    "head_sha a number": {"head_sha": 12345},
}


@pytest.mark.parametrize("case", list(WR_PAYLOADS))
def test_a_malformed_workflow_run_payload_is_one_clear_line(results, tmp_path, gh, case):
    from quantgate.report.comment import render_comment

    artifact = tmp_path / "comment.md"
    artifact.write_text(render_comment(results, env={}))
    event = _wr_event(tmp_path)
    doc = json.loads(event.read_text())
    doc["workflow_run"].update(WR_PAYLOADS[case])
    event.write_text(json.dumps(doc))
    gh.add_pull(REPO, 7, "forker/models", "main", SHA)
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": gh.base_url,
           "GITHUB_EVENT_PATH": str(event)}  # fmt: skip
    proc = _cli("comment", "--from-artifact", artifact, "--workflow-run-event", env=env, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "no pull request to comment on" in line
    assert gh.comments_on(REPO, 7) == []


def test_a_pull_request_without_a_number_is_one_clear_line(results, tmp_path, gh):
    from quantgate.report.comment import render_comment

    artifact = tmp_path / "comment.md"
    artifact.write_text(render_comment(results, env={}))
    gh.add_pull(REPO, 7, "forker/models", "main", SHA)
    gh.pulls[REPO][0]["number"] = "7; DROP"
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": gh.base_url,
           "GITHUB_EVENT_PATH": str(_wr_event(tmp_path))}  # fmt: skip
    proc = _cli("comment", "--from-artifact", artifact, "--workflow-run-event", env=env, cwd=tmp_path)
    assert proc.returncode == 0 and "internal error" not in proc.stderr
    assert "malformed answer: a pull request without a number" in proc.stderr


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_slow_loris_answer_cannot_hold_the_comment_past_its_deadline(results_file, tmp_path, gh, where):
    answer = hostile.slow_loris_answer()
    start = answer.index(b"\r\n\r\n") + 4 if where == "body" else 0  # headers at once, or a byte at a time too
    gh.fault("GET", r"/comments$", None, raw=answer, trickle=0.05, trickle_from=start, times=10)
    proc, outcome = _comment(results_file, tmp_path, gh, env={"QUANTGATE_GITHUB_DEADLINE": "2"}, timeout=90)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert outcome["action"] == "failed"
    assert "no complete answer within the 2 s" in outcome["message"]
    assert not [r for r in gh.requests if r.method in ("PATCH", "POST")]


def test_a_deadline_that_is_not_a_number_is_one_line(results_file, tmp_path, gh):
    proc, _ = _comment(results_file, tmp_path, gh, env={"QUANTGATE_GITHUB_DEADLINE": "soon"})
    assert_one_line_error(proc, "QUANTGATE_GITHUB_DEADLINE", "'soon'")
