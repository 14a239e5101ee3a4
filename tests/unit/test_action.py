"""The action without Docker: the Actions sinks (report/actions.py), the action's settings
(quantgate/action/settings.py) and a full in-process action run on a real model, plus lint of the
action's files."""

from __future__ import annotations

import json

import pytest

from action_support import (
    REPO,
    WORKFLOWS,
    parse_output_file,
    results_of,
    row,
    runner_env,
    write_mlp_registry,
)
from comment_support import FORK_TOKEN, TOKEN
from comment_support import REPO as GH_REPO
from github_server import FakeGitHub
from quantgate import action as ep
from quantgate.action import settings
from quantgate.errors import UserError
from quantgate.github import context
from quantgate.report import actions


def test_escape_data_and_property():
    assert actions.escape_data("50% a\r\nb") == "50%25 a%0D%0Ab"
    assert actions.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_workflow_command_leaves_out_none_properties():
    assert actions.workflow_command("warning", "hi") == "::warning::hi"
    line = actions.workflow_command("error", "m:1,2", file="a,b.json", line=None, title="t: x")
    assert line == "::error file=a%2Cb.json,title=t%3A x::m:1,2"


def test_annotation_points_at_registry_line():
    r = row("m1", "fail", drop=0.0234, plcc=0.9766, registry_line=12, reason="drop exceeds")
    line = actions.annotation_for(r, "model/tiny/registry.json")
    assert line.startswith("::error file=model/tiny/registry.json,line=12,title=quantgate%3A m1 is over")
    assert line.endswith("::m1 (dynamic): drop 0.023400 > budget 0.0100 (PLCC 0.976600)")


def test_annotation_of_error_and_of_fail_without_drop():
    e = actions.annotation_for(row("m2", "error", reason="int8 sidecar not found:\nx"), "r.json")
    assert "title=quantgate%3A m2 could not be judged" in e
    assert e.endswith("::m2 (dynamic): int8 sidecar not found:%0Ax") and "line=" not in e
    f = actions.annotation_for(row("m3", "fail", reason="output collapsed"), "r.json")
    assert f.endswith("::m3 (dynamic): output collapsed")


def test_annotations_at_most_ten_and_say_so():
    rows = [row(f"f{i:02d}", "fail", drop=0.5, plcc=0.5, registry_line=i + 2) for i in range(8)]
    rows += [row(f"e{i}", "error", reason="boom", registry_line=100 + i) for i in range(5)]
    rows += [row("ok", "pass", drop=0.0), row("fp", "skipped")]
    lines = actions.annotation_lines(results_of(rows), "reg.json")
    errors = [ln for ln in lines if ln.startswith("::error")]
    assert len(errors) == 10
    assert all("f0" in ln for ln in errors[:8])  # failures first
    assert lines[-1].startswith("::notice") and "13 models" in lines[-1] and "first 10" in lines[-1]
    few = actions.annotation_lines(results_of(rows[:3] + rows[-2:]), "reg.json")
    assert len(few) == 3 and not any(ln.startswith("::notice") for ln in few)


def test_outputs_from_results_and_error():
    res = results_of(
        [row("a", "pass", drop=0.01), row("b", "pass", drop=0.02), row("c", "fail", drop=0.0312), row("d", "skipped")]
    )
    out = actions.outputs_from_results(res, results_path="q.json", markdown_path="q.md")
    assert out == {
        "verdict": "fail",
        "passed": "2",
        "failed": "1",
        "errored": "0",
        "skipped": "1",
        "total": "4",
        "worst_drop": "0.0312",
        "results_path": "q.json",
        "markdown_path": "q.md",
    }
    err = actions.outputs_from_results(None)
    assert err["verdict"] == "error" and err["results_path"] == "" and err["worst_drop"] == ""
    assert set(err) == set(actions.OUTPUT_NAMES)


def test_write_outputs_appends_and_is_multiline_safe(tmp_path):
    f = tmp_path / "out"
    f.write_text("earlier=1\n")
    actions.write_outputs(f, {"verdict": "pass", "note": "line1\nline2=x\nghadelimiter_fake"})
    parsed = parse_output_file(f.read_text())
    assert parsed == {"earlier": "1", "verdict": "pass", "note": "line1\nline2=x\nghadelimiter_fake"}
    with pytest.raises(ValueError):
        actions.format_output("bad name", "x")


def test_append_summary_appends(tmp_path):
    f = tmp_path / "summary.md"
    f.write_text("# earlier step\n")
    assert actions.append_summary(f, "| a |\n|---|") is False
    assert f.read_text() == "# earlier step\n\n| a |\n|---|\n"


def test_append_summary_cuts_at_line_under_limit(tmp_path):
    f = tmp_path / "summary.md"
    table = "".join(f"| row {i:04d} | ✅ |\n" for i in range(500))
    assert actions.append_summary(f, table, limit=2048, full_copy="quantgate-results.md") is True
    text = f.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 2048
    assert "`quantgate-results.md`" in text
    body = text.split("\n\n_The table was cut")[0]
    assert all(ln.startswith("| row ") and ln.endswith("|") for ln in body.splitlines())


def test_parsers():
    assert settings.parse_bool("", name="x", default=True) is True
    assert settings.parse_bool(" FALSE ", name="x", default=True) is False
    assert settings.parse_bool("yes", name="x", default=False) is True
    with pytest.raises(UserError, match="input x: 'maybe' is not a boolean"):
        settings.parse_bool("maybe", name="x", default=True)
    assert settings.parse_int("", name="samples", default=16, minimum=1) == 16
    assert settings.parse_int(" 8 ", name="samples", default=16, minimum=1) == 8
    with pytest.raises(UserError, match="below 1"):
        settings.parse_int("0", name="samples", default=16, minimum=1)
    with pytest.raises(UserError, match="not a whole number"):
        settings.parse_int("1.5", name="seed", default=0)
    assert settings.parse_ids("a, b\nc  d,,") == ["a", "b", "c", "d"]
    assert settings.input_env_name("fail_on_violation") == "INPUT_FAIL_ON_VIOLATION"


def test_pull_request_number(tmp_path):
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps({"number": 5, "pull_request": {"number": 5}}))
    assert context.pull_request_number(context.load_event(str(ev), strict=False)) == 5
    assert context.pull_request_number({"ref": "refs/heads/main"}) is None
    assert context.load_event(str(tmp_path / "missing.json"), strict=False) == {}
    (tmp_path / "bad.json").write_text("{")
    assert context.load_event(str(tmp_path / "bad.json"), strict=False) == {}


def test_settings_from_env_defaults(ws):
    s = settings.Settings.load({}, {"GITHUB_WORKSPACE": str(ws), "INPUT_MODELS": "", "INPUT_COMMENT": ""})
    assert s.workspace == ws.resolve() and s.working_directory == ws.resolve()
    assert s.registry == ws.resolve() / "model/tiny/registry.json"
    assert s.models == [] and s.fail_on_violation is True and s.comment is True
    assert (s.samples, s.seed) == (None, 0)  # adaptive sampling
    assert s.on_marginal == "fail"  # a budget not shown to be met is not met
    assert s.out_json == ws.resolve() / "quantgate-results.json"
    warn = settings.Settings.load({}, {"GITHUB_WORKSPACE": str(ws), "INPUT_ON-MARGINAL": " Warn "})
    assert warn.on_marginal == "warn"


def test_settings_options_win_over_env(ws):
    env = {
        "GITHUB_WORKSPACE": str(ws),
        "INPUT_REGISTRY": "env.json",
        "INPUT_SAMPLES": "32",
        "INPUT_FAIL_ON_VIOLATION": "false",
        "INPUT_MODELS": "a,b",
        "INPUT_WORKING_DIRECTORY": "sub",
        "INPUT_GITHUB_TOKEN": "tok",
    }
    s = settings.Settings.load({"registry": "cli.json", "samples": None, "seed": "3"}, env)
    assert s.working_directory == (ws / "sub").resolve()
    assert s.registry == (ws / "sub" / "cli.json").resolve()
    assert (s.samples, s.seed, s.fail_on_violation, s.models) == (32, 3, False, ["a", "b"])
    assert s.github_token == "tok"


def test_inputs_are_kebab_case_and_the_snake_case_ids_still_work(ws):
    (ws / "sub").mkdir(exist_ok=True)
    # as the runner sends them: every declared kebab-case input, holding its default when not given
    runner = {f"INPUT_{settings.INPUT_NAMES[n].upper()}": v for n, v in settings.DEFAULTS.items()}
    runner |= {"GITHUB_WORKSPACE": str(ws), "INPUT_GITHUB-TOKEN": "job-token"}
    new = settings.Settings.load({}, {**runner, "INPUT_JSON-OUT": "r/new.json", "INPUT_FAIL-ON-VIOLATION": "false"})
    assert new.out_json == ws.resolve() / "r/new.json" and new.fail_on_violation is False and not new.old_inputs
    assert new.github_token == "job-token"
    # quantgate 0.1's ids: given, they win over the new name's default (the token over the job's)
    old = {"INPUT_OUT_JSON": "r/old.json", "INPUT_WORKING_DIRECTORY": "sub", "INPUT_GITHUB_TOKEN": "pat"}
    s = settings.Settings.load({}, {**runner, **old})
    assert s.out_json == (ws / "sub" / "r/old.json").resolve() and s.working_directory == (ws / "sub").resolve()
    assert s.github_token == "pat" and sorted(s.old_inputs) == ["github_token", "out_json", "working_directory"]
    # docker run -e INPUT_OUT_JSON=... (no runner, no kebab-case variable at all)
    bare = settings.Settings.load({}, {"GITHUB_WORKSPACE": str(ws), "INPUT_MARKDOWN_OUT": "t.md"})
    assert bare.markdown_out == ws.resolve() / "t.md"
    # both names, two values: one line that names the input as it is documented
    with pytest.raises(UserError) as e:
        settings.Settings.load({}, {**runner, "INPUT_JSON-OUT": "a.json", "INPUT_OUT_JSON": "b.json"})
    assert e.value.render(settings.input_name).startswith("input json-out: both json-out and its old name out_json")


def test_settings_accept_absolute_inside_workspace(ws):
    s = settings.Settings.load({"registry": str(ws / "sub" / "r.json")}, {"GITHUB_WORKSPACE": str(ws)})
    assert s.registry == (ws / "sub" / "r.json").resolve()


@pytest.mark.parametrize(
    "name,value,fragment",
    [
        ("registry", "../outside.json", "input registry"),
        ("out_json", "/etc/passwd", "outside the workspace"),
        ("working_directory", "missing", "is not a folder"),
        ("models", "a,../../x.onnx", "input models"),
        ("samples", "zero", "input samples"),
        ("comment", "perhaps", "input comment"),
        ("on-marginal", "maybe", "input on-marginal"),
        ("out_json", "model/tiny/registry.json", "is also this run's registry"),
        ("markdown_out", "model.onnx", "named like a model or data file"),
    ],
)
def test_settings_refuse_bad_inputs(ws, name, value, fragment):
    with pytest.raises(UserError, match=fragment):
        settings.Settings.load({}, {"GITHUB_WORKSPACE": str(ws), settings.input_env_name(name): value})


def test_a_workspace_that_is_not_a_folder_is_one_line_with_its_fix(tmp_path):
    with pytest.raises(UserError) as e:
        settings.Settings.load({}, {"GITHUB_WORKSPACE": str(tmp_path / "absent")})
    assert e.value.render(settings.input_name) == (
        f"workspace {tmp_path / 'absent'}: is not a folder; mount the repository there"
    )


def test_settings_refuse_symlink_out_of_workspace(ws, tmp_path):
    (tmp_path / "secret.json").write_text("{}")
    (ws / "link.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(UserError, match="outside the repository"):
        settings.Settings.load({"registry": "link.json"}, {"GITHUB_WORKSPACE": str(ws)})


def test_entrypoint_pass(mlp_workspace, tmp_path, capsys, keep_cwd):
    reg = write_mlp_registry(mlp_workspace, budget=1.0)
    env = runner_env(mlp_workspace, tmp_path, registry=reg, comment="true", samples="32")
    assert ep.run({}, env) == 0
    out = parse_output_file((tmp_path / "file_commands" / "out").read_text())
    assert out["verdict"] == "pass" and out["passed"] == "1" and out["failed"] == "0"
    assert out["results_path"] == "quantgate-results.json"
    results = json.loads((mlp_workspace / out["results_path"]).read_text())
    assert results["settings"]["samples"] == 32 and results["models"][0]["status"] == "pass"
    summary = (tmp_path / "file_commands" / "summary").read_text()
    assert "`mlp`" in summary and summary == (mlp_workspace / out["markdown_path"]).read_text()
    printed = capsys.readouterr().out
    assert "::error" not in printed and "no pull request" in printed


@pytest.fixture
def gh():
    """GitHub's REST API as a real HTTP server on loopback (tests/github_server.py)."""
    with FakeGitHub() as server:
        server.add_token(TOKEN, "quantgate-bot", "user")
        server.add_token(FORK_TOKEN, "github-actions[bot]", "fork")
        yield server


def _on_pr(env: dict, gh) -> dict:
    return {**env, "GITHUB_API_URL": gh.base_url, "GITHUB_REPOSITORY": GH_REPO}


def test_entrypoint_violation_and_fail_on_violation(mlp_workspace, tmp_path, capsys, keep_cwd, gh):
    reg = write_mlp_registry(mlp_workspace, budget=0.0)
    env = runner_env(
        mlp_workspace, tmp_path, registry=reg, out_json="out/r.json", event_name="pull_request", github_token=FORK_TOKEN
    )
    env = _on_pr(env, gh)
    assert ep.run({}, env) == 1
    printed = capsys.readouterr().out
    assert "::error file=models/registry.json,line=5,title=quantgate%3A mlp is over" in printed
    # comment is on and this is a PR from a fork: its read-only token cannot post, which only warns
    said = "::warning title=quantgate comment::the pull-request comment was not posted: the token may not write"
    assert said in printed and f"POST /repos/{GH_REPO}/issues/3/comments: 403" in printed, printed  # keeps ':'
    assert [r.method for r in gh.requests if r.method == "POST"] == ["POST"] and not gh.comments_on(GH_REPO, 3)
    body = (mlp_workspace / "quantgate-comment.md").read_text()  # for the companion workflow
    assert "`mlp`" in body and "FAIL" in body.upper()
    out = parse_output_file((tmp_path / "file_commands" / "out").read_text())
    assert out["verdict"] == "fail" and out["failed"] == "1" and out["results_path"] == "out/r.json"
    assert out["comment"] == "body_written" and out["comment_url"] == ""
    env["INPUT_FAIL_ON_VIOLATION"] = "false"
    env["INPUT_COMMENT"] = "false"
    assert ep.run({}, env) == 0


def test_entrypoint_comment_gets_token_and_success_is_quiet(mlp_workspace, tmp_path, capsys, keep_cwd, gh):
    reg = write_mlp_registry(mlp_workspace, budget=1.0)
    env = runner_env(mlp_workspace, tmp_path, registry=reg, event_name="pull_request", github_token=TOKEN)
    assert ep.run({}, _on_pr(env, gh)) == 0
    (posted,) = gh.comments_on(GH_REPO, 3)
    assert "`mlp`" in posted["body"] and {r.authorization for r in gh.requests} == {f"Bearer {TOKEN}"}
    printed = capsys.readouterr().out
    assert "::warning title=quantgate comment" not in printed and "not posted" not in printed
    out = parse_output_file((tmp_path / "file_commands" / "out").read_text())
    assert out["comment"] == "created" and out["comment_url"].endswith(f"#issuecomment-{posted['id']}")
    assert ep.run({}, _on_pr(env, gh)) == 0  # a second run edits the one comment in place
    assert len(gh.comments_on(GH_REPO, 3)) == 1


def test_entrypoint_comment_failure_is_a_warning(mlp_workspace, tmp_path, capsys, keep_cwd, gh):
    """A comment that fails (a token GitHub does not know) never changes the gate's exit code."""
    reg = write_mlp_registry(mlp_workspace, budget=0.0)
    env = runner_env(mlp_workspace, tmp_path, registry=reg, event_name="pull_request", github_token="ghp_unknown")
    assert ep.run({}, _on_pr(env, gh)) == 1  # the gate's code, untouched
    printed = capsys.readouterr().out
    assert "::warning title=quantgate comment::the pull-request comment was not posted: " in printed
    assert "401" in printed and "the verdict stands" in printed, printed
    out = parse_output_file((tmp_path / "file_commands" / "out").read_text())
    assert out["comment"] == "failed" and not gh.comments_on(GH_REPO, 3)


def test_entrypoint_user_error_is_one_line_and_outputs_error(mlp_workspace, tmp_path, capsys, keep_cwd):
    env = runner_env(mlp_workspace, tmp_path, registry="models/nope.json")
    assert ep.run({}, env) == 2
    cap = capsys.readouterr()
    err_lines = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert len(err_lines) == 1 and err_lines[0].startswith("quantgate: error:") and "nope.json" in err_lines[0]
    assert "::error title=quantgate could not run::" in cap.out
    out = parse_output_file((tmp_path / "file_commands" / "out").read_text())
    assert out["verdict"] == "error" and out["results_path"] == ""
    assert "could not run the gate" in (tmp_path / "file_commands" / "summary").read_text()


def test_entrypoint_crash_exits_2_not_1(mlp_workspace, tmp_path, capsys, keep_cwd, monkeypatch):
    import quantgate.gate

    def boom(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(quantgate.gate, "run_gate", boom)
    env = runner_env(mlp_workspace, tmp_path, registry=write_mlp_registry(mlp_workspace, budget=1.0))
    assert ep.main({}, env) == 2
    cap = capsys.readouterr()
    assert "Traceback" in cap.err and "quantgate crashed (RuntimeError: a bug)" in cap.err
    assert parse_output_file((tmp_path / "file_commands" / "out").read_text())["verdict"] == "error"


def test_entrypoint_outside_actions_prints_table(mlp_workspace, tmp_path, capsys, keep_cwd):
    reg = write_mlp_registry(mlp_workspace, budget=1.0)
    code = ep.run({"registry": reg, "workspace": str(mlp_workspace), "comment": "false"}, {"PATH": "/usr/bin:/bin"})
    assert code == 0
    printed = capsys.readouterr().out
    assert "| `mlp` |" in printed and "::" not in printed


def test_workflows_exist():
    assert {"ci.yml", "self-test.yml", "release.yml"} <= {w.name for w in WORKFLOWS}


def test_action_yml_declares_what_the_entrypoint_reads_and_writes():
    import yaml

    meta = yaml.safe_load((REPO / "action.yml").read_text())
    assert meta["runs"] == {"using": "docker", "image": "Dockerfile"}
    kebab = {settings.INPUT_NAMES[n] for n in settings.DEFAULTS}
    assert set(meta["inputs"]) == kebab | set(settings.OLD_INPUT_NAMES.values())
    for name, spec in meta["inputs"].items():
        assert name == name.lower(), name
        if name in kebab:  # the documented names: kebab-case, with the defaults the code applies
            assert "_" not in name, name
            library = next(n for n in settings.DEFAULTS if settings.INPUT_NAMES[n] == name)
            assert str(spec["default"]) == settings.DEFAULTS[library] or name == "github-token", name
        else:  # quantgate 0.1's names: no default (the new one holds it), a deprecation message
            assert "default" not in spec and spec["deprecationMessage"].startswith(name), name
    assert meta["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert set(meta["outputs"]) == (
        set(actions.OUTPUT_NAMES) | set(actions.COMMENT_OUTPUT_NAMES) | set(actions.PLOTS_OUTPUT_NAMES)
    )
