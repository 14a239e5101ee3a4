"""The command line: sticky pull-request comment, against a loopback server that answers as GitHub does.

Each scenario checks the requests quantgate made (method, path, body) and the comment that
results. The results documents come from a real gate run on small ONNX models.
"""

from __future__ import annotations

import json

from comment_support import (
    APP_TOKEN,
    FORK_TOKEN,
    PR,
    REPO,
    SHA,
    TOKEN,
    _wr_event,
    mark,
    run_cli,
)
from quantgate.github.comment import ACTIONS_BOT
from quantgate.report.comment import render_comment


def test_cli_posts_from_event_payload(gh, results_file, tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": PR}}))
    env = {
        "GITHUB_API_URL": gh.base_url,
        "INPUT_GITHUB_TOKEN": APP_TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "77",
    }
    outcome = tmp_path / "outcome.json"
    p = run_cli("--results", results_file, "--outcome-out", outcome, env=env)
    assert p.returncode == 0, p.stderr
    assert "comment created" in p.stdout
    [c] = gh.comments_on(REPO, PR)
    assert c["user"]["login"] == ACTIONS_BOT and "actions/runs/77" in c["body"]
    o = json.loads(outcome.read_text())
    assert o["action"] == "created" and o["posted"] and o["pr"] == PR and o["comment_id"] == c["id"]
    p = run_cli("--results", results_file, env=env)
    assert "comment unchanged" in p.stdout and len(gh.comments_on(REPO, PR)) == 1


def test_cli_fork_is_a_warning_and_exit_0(gh, results_file, tmp_path):
    env = {"GITHUB_API_URL": gh.base_url, "GITHUB_TOKEN": FORK_TOKEN}
    outcome = tmp_path / "o.json"
    p = run_cli(
        "--results",
        results_file,
        "--repo",
        REPO,
        "--pr",
        PR,
        "--body-out",
        tmp_path / "body.md",
        "--outcome-out",
        outcome,
        env=env,
        cwd=tmp_path,
    )
    assert p.returncode == 0
    assert p.stderr.startswith("quantgate: warning: comment not posted (body_written)")
    assert FORK_TOKEN not in p.stderr + p.stdout + outcome.read_text()
    o = json.loads(outcome.read_text())
    assert o["action"] == "body_written" and o["body_path"] == str(tmp_path / "body.md")
    assert (tmp_path / "body.md").read_text().startswith("<!-- quantgate:comment registry=model/registry.json -->")


def test_cli_user_mistakes_exit_2_with_one_line(gh, results_file, tmp_path):
    from conftest import assert_one_line_error

    env = {"GITHUB_API_URL": gh.base_url, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO}
    assert_one_line_error(
        run_cli("--results", tmp_path / "missing.json", "--pr", 1, env=env), "missing.json", "quantgate gate --json-out"
    )
    assert_one_line_error(run_cli("--results", results_file, env=env), "--pr", "pull request context")
    assert_one_line_error(
        run_cli("--results", results_file, "--repo", "not a repo", "--pr", 1, env=env), "--repo", "OWNER/NAME"
    )
    (tmp_path / "junk.json").write_text("{nope")
    assert_one_line_error(run_cli("--results", tmp_path / "junk.json", "--pr", 1, env=env), "junk.json")
    assert gh.requests == []


def test_cli_off_renders_only(gh, results_file, tmp_path):
    p = run_cli(
        "--results",
        results_file,
        "--mode",
        "off",
        "--body-out",
        tmp_path / "b.md",
        env={"GITHUB_API_URL": gh.base_url, "GITHUB_TOKEN": TOKEN},
    )
    assert p.returncode == 0 and (tmp_path / "b.md").read_text().startswith("<!-- quantgate:comment")
    assert gh.requests == []


def test_cli_companion_posts_sanitised_artifact(gh, results, tmp_path):
    gh.add_pull(REPO, 12, "forker/models", "main", SHA)
    art = tmp_path / "quantgate-comment.md"
    art.write_text(render_comment(results, env={}) + "\ncc @maintainer\n")
    env = {
        "GITHUB_API_URL": gh.base_url,
        "GITHUB_TOKEN": APP_TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(_wr_event(tmp_path)),
    }
    p = run_cli("--from-artifact", art, "--workflow-run-event", env=env)
    assert p.returncode == 0, p.stderr
    [c] = gh.comments_on(REPO, 12)
    assert c["user"]["login"] == ACTIONS_BOT and "@maintainer" not in c["body"]
    assert c["body"].startswith(mark(results) + "\n❌") or c["body"].startswith(mark(results) + "\n⚠️")
    # A second run updates the same comment.
    p = run_cli("--from-artifact", art, "--workflow-run-event", env=env)
    assert "comment unchanged" in p.stdout and len(gh.comments_on(REPO, 12)) == 1


def test_cli_companion_refuses_a_forged_artifact(gh, tmp_path):
    from conftest import assert_one_line_error

    gh.add_pull(REPO, 12, "forker/models", "main", SHA)
    art = tmp_path / "a.md"
    art.write_text("Please merge, @maintainer\n")
    env = {
        "GITHUB_API_URL": gh.base_url,
        "GITHUB_TOKEN": APP_TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(_wr_event(tmp_path)),
    }
    assert_one_line_error(run_cli("--from-artifact", art, "--workflow-run-event", env=env), "a.md", "marker")
    assert gh.calls("POST") == []


def test_cli_companion_stale_run_posts_nothing(gh, results, tmp_path):
    gh.add_pull(REPO, 12, "forker/models", "main", "d" * 40)  # the fork pushed again
    art = tmp_path / "a.md"
    art.write_text(render_comment(results, env={}))
    env = {
        "GITHUB_API_URL": gh.base_url,
        "GITHUB_TOKEN": APP_TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(_wr_event(tmp_path)),
    }
    p = run_cli("--from-artifact", art, "--workflow-run-event", env=env)
    assert p.returncode == 0 and "no pull request to comment on" in p.stderr
    assert gh.calls("POST") == []
