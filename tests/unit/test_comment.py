"""The sticky pull-request comment, against a loopback server that answers as GitHub does.

Each scenario checks the requests quantgate made (method, path, body) and the comment that
results. The results documents come from a real gate run on small ONNX models.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from comment_support import (
    APP_TOKEN,
    FORK_TOKEN,
    PR,
    REPO,
    SHA,
    TOKEN,
    _many,
    client,
    mark,
    render_for,
)
from github_server import BODY_LIMIT, INTEGRATION_403, FakeGitHub
from quantgate.errors import UserError
from quantgate.github.client import GitHubClient, GitHubError
from quantgate.github.comment import ACTIONS_BOT, SHORT_MAX, pr_for_workflow_run, sanitise_artifact, sync_comment
from quantgate.report.comment import DEFAULT_MAX, GITHUB_LIMIT, render_comment, reproduce_commands, size
from quantgate.results import Results
from quantgate.text import ZWSP


def test_body_layout_from_real_results(results):
    env = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_RUN_ID": "991",
        "GITHUB_RUN_ATTEMPT": "2",
    }
    body = render_comment(results, env=env)
    lines = body.splitlines()
    assert lines[0] == "<!-- quantgate:comment registry=model/registry.json -->"
    assert lines[1].startswith(
        "⚠️ **quantgate: error** — 1 over budget, 1 could not be judged, 1 within budget, 1 skipped"
    )
    rows = [ln for ln in lines if ln.startswith("| ") and "`" in ln]
    # the fp32 entry is one count line, not a row; --show-skipped lists it
    assert [r.split("`")[1] for r in rows] == ["tight_mlp", "lost_mlp", "good_mlp"]
    assert "➖ 1 fp32 entry not gated (nothing to compare); `--show-skipped`" in body and "float_mlp" not in body
    listed = render_comment(results, env=env, show_skipped=True)
    every = [ln.split("`")[1] for ln in listed.splitlines() if ln.startswith("| ") and "`" in ln]
    assert every == ["tight_mlp", "lost_mlp", "good_mlp", "float_mlp"] and "fp32 entry not gated" not in listed
    assert rows[0].startswith("| ❌ |") and rows[1].startswith("| ⚠️ |") and rows[2].startswith("| ✅ |")
    tight = results.row("tight_mlp")
    with pytest.raises(KeyError, match="no row for 'nope'; rows: good_mlp, tight_mlp, lost_mlp, float_mlp"):
        results.row("nope")
    assert f"{tight.drop:.1e}" in rows[0] and "1e-12" in rows[0] and "| 64 |" in rows[0]  # drop, budget, n
    assert tight.drop_ci is not None and "e-0" in rows[0].split("|")[5]  # its 95% interval, compact
    header = next(ln for ln in lines if ln.startswith("| | model"))
    for col in ("mode", "drop", "95% CI", "n", "budget", "max err", "fp32→int8"):
        assert col in header
    assert "<details><summary>" in body and "</details>" in body
    cpu = results.run_provenance["cpu"]
    assert f"int8 features: {', '.join(cpu['int8_features']) or 'none detected'}" in body
    assert f"onnxruntime {results.run_provenance['versions']['onnxruntime']}" in body
    # the fixture gated every entry: the reproduce line names no selection and no output files
    assert "quantgate gate --registry model/registry.json --samples 64 --seed 0\n" in body
    assert "docker run --rm" in body and "/tmp/x.json" not in body and " -q" not in body
    assert "https://github.com/octo/models/actions/runs/991/attempts/2" in body
    assert "sidecar not found" in body  # the erroring model's reason is shown
    assert size(body) < DEFAULT_MAX


def test_table_is_phone_narrow(results):
    body = render_comment(results, env={})
    for ln in body.splitlines():
        if ln.startswith("| ") and "`" in ln:
            cells = ln.strip("|").split("|")
            assert len(cells) == 11  # icon, model, mode, drop, CI, n, budget, max err, KiB, int8 w., int8/fp32
            assert max(len(c.strip()) for c in cells[2:]) <= 14, ln  # numbers stay short


def test_long_table_is_cut_failing_first_and_points_at_the_job_summary(results):
    doc = _many(results, 2000, 40)
    env = {"GITHUB_REPOSITORY": REPO, "GITHUB_RUN_ID": "5"}
    body = render_comment(doc, env=env)
    assert size(body) <= DEFAULT_MAX < GITHUB_LIMIT
    for i in range(40):
        assert f"fail_model_{i:05d}" in body
    shown = sum(ln.startswith("| ") and "`pass_model_" in ln for ln in body.splitlines())  # table rows
    assert 0 < shown < 2000
    assert f"{2000 - shown} more model(s) not shown" in body
    assert "[job summary](https://github.com/octo/models/actions/runs/5)" in body
    assert body.index("fail_model_00039") < body.index("pass_model_00000")
    short = render_comment(doc, max_chars=SHORT_MAX, env=env)
    assert size(short) <= SHORT_MAX and "fail_model_00000" in short and "</details>" in short


def test_untrusted_text_is_escaped_and_pings_nobody(results):
    doc = results.to_json()
    doc["models"][1]["id"] = "evil|@octocat"
    doc["models"][1]["reason"] = "ask @org/team <img src=x> | cc @someone, mail a@b.org"
    body = render_comment(Results.from_json(doc), env={})
    assert "@octocat" not in body and "@org/team" not in body and "@someone" not in body
    assert f"@{ZWSP}org/team" in body and "a@b.org" in body  # emails are not mentions
    assert "<img" not in body and "&lt;img src=x&gt;" in body
    row = next(ln for ln in body.splitlines() if "evil" in ln)
    assert len(row.replace("\\|", "").strip("|").split("|")) == 11  # the pipe did not add a column


def test_reproduce_commands_keep_selection_and_drop_output_files(results):
    from quantgate.gate import run_gate

    reg = results.run_provenance["inputs"]["registry"]["path"]
    picked = run_gate(
        reg,
        ["tight_mlp", "good_mlp"],
        samples=64,
        seed=0,
        argv=["quantgate", "gate", "tight_mlp", "good_mlp", "--json-out", "/tmp/x.json"],
    )
    cmds = reproduce_commands(picked, image="ghcr.io/octo/quantgate:0.1.0")
    gate = next(c for c in cmds if c.startswith(("pip install", "quantgate gate")))
    assert gate.endswith("quantgate gate --registry model/registry.json --samples 64 --seed 0 tight_mlp good_mlp")
    assert cmds[-1] == (
        'docker run --rm -v "$PWD:/github/workspace" -w /github/workspace '
        "ghcr.io/octo/quantgate:0.1.0 --registry model/registry.json --samples 64 --seed 0 "
        "--models tight_mlp,good_mlp"
    )
    assert "/tmp/x.json" not in " ".join(cmds)
    every = reproduce_commands(results, image="img")
    assert every[-1].endswith("img --registry model/registry.json --samples 64 --seed 0")


def test_pagination_over_100_comments_updates_ours_not_a_foreign_marker(gh, results):
    m = mark(results)
    gh.add_comment(REPO, PR, m + "\nI pasted your marker", "mallory")  # page 1, someone else's
    for i in range(230):
        gh.add_comment(REPO, PR, f"chatter {i}", "alice")
    ours = gh.add_comment(REPO, PR, m + "\nold table", "quantgate-bot")  # page 3
    out = sync_comment(client(gh), REPO, PR, render_for(results), marker=m)
    assert out.action == "updated" and out.comment_id == ours["id"]
    gets = [r for r in gh.calls("GET") if r.path.endswith("/comments")]
    assert [r.query.get("page", "1") for r in gets] == ["1", "2", "3"]
    assert all(r.query["per_page"] == "100" for r in gets)
    writes = [r for r in gh.requests if r.method != "GET"]
    assert [(r.method, r.path) for r in writes] == [("PATCH", f"/repos/{REPO}/issues/comments/{ours['id']}")]
    assert writes[0].body == {"body": render_comment(results, env={})}
    assert gh.comments[ours["id"]]["body"].startswith(m + "\n⚠️ **quantgate: error**")
    assert gh.comments_on(REPO, PR)[0]["body"] == m + "\nI pasted your marker"  # untouched
    assert all(r.authorization == f"Bearer {TOKEN}" for r in gh.requests)


def test_creates_when_only_others_carry_the_marker(gh, results):
    m = mark(results)
    foreign = gh.add_comment(REPO, PR, m + "\nfake", "mallory")
    out = sync_comment(client(gh), REPO, PR, render_for(results), marker=m)
    assert out.action == "created"
    assert [(r.method, r.path) for r in gh.requests if r.method != "GET"] == [
        ("POST", f"/repos/{REPO}/issues/{PR}/comments")
    ]
    assert gh.comments[foreign["id"]]["body"] == m + "\nfake"
    assert [c["user"]["login"] for c in gh.comments_on(REPO, PR)] == ["mallory", "quantgate-bot"]


def test_unchanged_body_makes_no_write(gh, results):
    m = mark(results)
    gh.add_comment(REPO, PR, render_comment(results, env={}), "quantgate-bot")
    out = sync_comment(client(gh), REPO, PR, render_for(results), marker=m)
    assert out.action == "unchanged"
    assert not [r for r in gh.requests if r.method != "GET"]


def test_one_comment_per_registry(gh, results):
    other = dataclasses.replace(results, registry="vendor/other/registry.json")
    sync_comment(client(gh), REPO, PR, render_for(results), marker=mark(results))
    sync_comment(client(gh), REPO, PR, render_for(other), marker=mark(other))
    sync_comment(client(gh), REPO, PR, render_for(results), marker=mark(results))
    firsts = [c["body"].splitlines()[0] for c in gh.comments_on(REPO, PR)]
    assert firsts == [mark(results), "<!-- quantgate:comment registry=vendor/other/registry.json -->"]


def test_recreate_deletes_ours_and_duplicates_are_cleaned_in_update(gh, results):
    m = mark(results)
    a = gh.add_comment(REPO, PR, m + "\nfirst", "quantgate-bot")
    b = gh.add_comment(REPO, PR, m + "\nraced duplicate", "quantgate-bot")
    f = gh.add_comment(REPO, PR, m + "\nnot ours", "mallory")
    out = sync_comment(client(gh), REPO, PR, render_for(results), marker=m)
    assert out.action == "updated" and out.comment_id == a["id"]
    assert [(r.method, r.path) for r in gh.requests if r.method != "GET"] == [
        ("DELETE", f"/repos/{REPO}/issues/comments/{b['id']}"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{a['id']}"),
    ]
    gh.requests.clear()
    out = sync_comment(client(gh), REPO, PR, render_for(results), marker=m, mode="recreate")
    assert out.action == "recreated"
    assert [(r.method, r.path) for r in gh.requests if r.method != "GET"] == [
        ("DELETE", f"/repos/{REPO}/issues/comments/{a['id']}"),
        ("POST", f"/repos/{REPO}/issues/{PR}/comments"),
    ]
    left = gh.comments_on(REPO, PR)
    assert next(c["id"] for c in left) == f["id"] and len(left) == 2 and left[1]["id"] > f["id"]


def test_github_token_identity_is_the_actions_bot(gh, results):
    """GITHUB_TOKEN cannot read /user (403); its comments are by github-actions[bot]."""
    m = mark(results)
    human = gh.add_comment(REPO, PR, m + "\nby a person with the marker", "quantgate-bot")
    bot = gh.add_comment(REPO, PR, m + "\nby the bot", ACTIONS_BOT)
    out = sync_comment(client(gh, APP_TOKEN), REPO, PR, render_for(results), marker=m)
    assert gh.requests[0].method == "GET" and gh.requests[0].path == "/user"
    assert out.action == "updated" and out.comment_id == bot["id"] and ACTIONS_BOT in out.message
    assert gh.comments[human["id"]]["body"].endswith("by a person with the marker")


def test_author_can_be_given_for_other_app_tokens(gh, results):
    m = mark(results)
    gh.add_comment(REPO, PR, m + "\nold", "my-app[bot]")
    out = sync_comment(client(gh, APP_TOKEN), REPO, PR, render_for(results), marker=m, author="my-app[bot]")
    assert out.action == "updated"
    assert not any(r.path == "/user" for r in gh.requests)


def test_fork_token_403_writes_the_body_and_never_raises(gh, results, tmp_path):
    out_file = tmp_path / "comment.md"
    out = sync_comment(client(gh, FORK_TOKEN), REPO, PR, render_for(results), marker=mark(results), body_out=out_file)
    assert out.action == "body_written" and not out.posted
    assert out.body_path == str(out_file) and out_file.read_text() == render_comment(results, env={})
    assert INTEGRATION_403 in out.message
    posts = gh.calls("POST")
    assert len(posts) == 1 and posts[0].status == 403
    assert gh.comments_on(REPO, PR) == []


def test_body_too_long_is_shortened_after_422(gh, results):
    m = mark(results)
    asked = []

    def render(n):
        asked.append(n)
        # The first body overshoots (as if counted differently than GitHub does).
        return m + "\n" + "x" * (BODY_LIMIT + 10) if n == DEFAULT_MAX else render_comment(results, max_chars=n, env={})

    out = sync_comment(client(gh), REPO, PR, render, marker=m)
    assert out.action == "created" and asked == [DEFAULT_MAX, SHORT_MAX]
    posts = gh.calls("POST")
    assert [p.status for p in posts] == [422, 201]
    assert len(posts[1].body["body"]) <= SHORT_MAX
    assert gh.comments_on(REPO, PR)[0]["body"] == render_comment(results, max_chars=SHORT_MAX, env={})


def test_429_retry_after_is_honoured(gh, results):
    gh.fault("GET", r"/comments$", 429, {"message": "Too Many Requests"}, {"Retry-After": "7"})
    c = client(gh)
    out = sync_comment(c, REPO, PR, render_for(results), marker=mark(results))
    assert out.action == "created" and c.waits == [7.0]
    gets = [r for r in gh.calls("GET") if r.path.endswith("/comments")]
    assert [r.status for r in gets] == [429, 200]


def test_secondary_and_primary_rate_limits_on_403(gh, results):
    gh.fault(
        "POST",
        r"/comments$",
        403,
        {
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "documentation_url": "https://docs.github.com",
        },
        {"Retry-After": "3"},
    )
    gh.fault(
        "POST",
        r"/comments$",
        403,
        {"message": "API rate limit exceeded for installation ID 1."},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1005"},
    )
    c = client(gh, clock=lambda: 1000.0)
    out = sync_comment(c, REPO, PR, render_for(results), marker=mark(results))
    assert out.action == "created" and c.waits == [3.0, 6.0]
    assert [p.status for p in gh.calls("POST")] == [403, 403, 201]
    assert len(gh.comments_on(REPO, PR)) == 1


def test_rate_limit_longer_than_we_wait_is_a_failed_outcome(gh, results):
    gh.fault("GET", r"/comments$", 429, {"message": "slow down"}, {"Retry-After": "3600"}, times=5)
    c = client(gh)
    out = sync_comment(c, REPO, PR, render_for(results), marker=mark(results))
    assert out.action == "failed" and "rate limited" in out.message and c.waits == []


def test_500_then_success_backs_off(gh, results):
    gh.fault("GET", r"/comments$", 500, {"message": "Server Error"})
    gh.fault("GET", r"/comments$", 502, {"message": "Bad Gateway"})
    c = client(gh)
    out = sync_comment(c, REPO, PR, render_for(results), marker=mark(results))
    assert out.action == "created" and c.waits == [1.0, 2.0]


def test_500_on_post_looks_before_posting_again(gh, results):
    gh.fault("POST", r"/comments$", 500, {"message": "Server Error"})
    out = sync_comment(client(gh), REPO, PR, render_for(results), marker=mark(results))
    assert out.action == "created"
    assert [p.status for p in gh.calls("POST")] == [500, 201]
    assert len(gh.comments_on(REPO, PR)) == 1


def test_post_timeout_that_landed_makes_no_duplicate(gh, results):
    gh.fault("POST", r"/comments$", None, delay=1.0)  # the comment is created, the answer is late
    c = client(gh, timeout=0.3)
    out = sync_comment(c, REPO, PR, render_for(results), marker=mark(results))
    assert out.action == "created" and out.comment_id is not None
    assert len(gh.calls("POST")) == 1
    assert len(gh.comments_on(REPO, PR)) == 1


def test_get_timeout_is_retried(gh, results):
    gh.fault("GET", r"/comments$", None, delay=1.0)
    c = client(gh, timeout=0.3)
    out = sync_comment(c, REPO, PR, render_for(results), marker=mark(results))
    assert out.action == "created" and c.waits == [1.0]


def test_enterprise_api_v3_prefix_and_pagination():
    with FakeGitHub(prefix="/api/v3") as ghes:
        ghes.add_token(TOKEN, "quantgate-bot")
        for i in range(150):
            ghes.add_comment(REPO, PR, f"c{i}", "alice")
        c = GitHubClient(token=TOKEN, base_url=ghes.base_url, sleep=lambda s: None)
        assert len(list(c.paginate(f"/repos/{REPO}/issues/{PR}/comments"))) == 150
        assert [r.path for r in ghes.requests] == [f"/api/v3/repos/{REPO}/issues/{PR}/comments"] * 2
        env_client = GitHubClient.from_env(TOKEN, {"GITHUB_API_URL": ghes.base_url + "/"})
        assert env_client.base_url == ghes.base_url


def test_link_to_another_host_is_not_followed(results):
    with FakeGitHub(link_host="http://127.0.0.2:9") as gh:
        gh.add_token(TOKEN, "quantgate-bot")
        for i in range(120):
            gh.add_comment(REPO, PR, f"c{i}", "alice")
        out = sync_comment(client(gh), REPO, PR, render_for(results), marker=mark(results))
        assert out.action == "failed" and "outside the API base URL" in out.message
        assert len(gh.requests) == 2 and gh.calls("POST") == []  # /user, page 1; nothing sent elsewhere


def test_token_never_leaks(gh, results, tmp_path):
    bad = "ghp_UNKNOWNtokenXYZ123"
    out = sync_comment(client(gh, bad), REPO, PR, render_for(results), marker=mark(results), body_out=tmp_path / "b.md")
    assert out.action == "failed" and "401 Bad credentials" in out.message
    gh.fault("GET", r"/comments$", 500, {"message": f"echoing your token {TOKEN}"}, times=9)
    out2 = sync_comment(client(gh), REPO, PR, render_for(results), marker=mark(results))
    assert out2.action == "failed"
    for text in (json.dumps(out.to_json()), json.dumps(out2.to_json()), (tmp_path / "b.md").read_text()):
        assert bad not in text and TOKEN not in text
    with pytest.raises(GitHubError) as e:
        client(gh).request("GET", f"/repos/{REPO}/issues/{PR}/comments")
    assert TOKEN not in str(e.value) and "***" in str(e.value)


def test_sanitise_artifact(results):
    body = render_comment(results, env={})
    head, verdict, rest = body.split("\n", 2)
    evil = f"{head}\n{verdict}\n<!-- quantgate:comment registry=other -->\nhey @maintainer\n<!-- hidden\n{rest}"
    clean, m = sanitise_artifact(evil.encode())
    assert m == mark(results)
    assert (
        clean.count("<!--") == 1
        and "hidden" not in clean
        and "@maintainer" not in clean
        and f"@{ZWSP}maintainer" in clean
    )
    with pytest.raises(UserError, match="first line"):
        sanitise_artifact(b"hello @everyone\n")
    with pytest.raises(UserError, match="verdict line"):
        sanitise_artifact((mark(results) + "\nplease merge\n").encode())
    with pytest.raises(UserError, match="verdict line"):  # text smuggled before the verdict
        sanitise_artifact(f"{head}\nhey @maintainer\n{verdict}\n{rest}".encode())
    with pytest.raises(UserError, match="cap"):
        sanitise_artifact(body.encode() + b"x" * GITHUB_LIMIT)
    with pytest.raises(UserError, match="UTF-8"):
        sanitise_artifact(mark(results).encode() + b"\n\xff\xfe")


def test_pr_is_found_from_the_run_head_not_the_artifact(gh):
    gh.add_pull(REPO, 3, "someone/models", "main", "b" * 40)
    gh.add_pull(REPO, 12, "forker/models", "main", SHA)
    c = client(gh)
    wr = {
        "event": "pull_request",
        "head_sha": SHA,
        "head_branch": "main",
        "head_repository": {"full_name": "forker/models"},
    }
    assert pr_for_workflow_run(c, REPO, wr)[0] == 12
    assert gh.requests[-1].query == {"per_page": "100", "state": "open", "head": "forker:main"}
    assert pr_for_workflow_run(c, REPO, {**wr, "head_sha": "c" * 40})[0] is None  # pushed again since
    assert pr_for_workflow_run(c, REPO, {**wr, "event": "push"})[0] is None
    # A renamed branch: still found by head SHA over every open PR.
    assert pr_for_workflow_run(c, REPO, {**wr, "head_branch": "gone"})[0] == 12


def test_rate_limited_user_lookup_is_waited_out_not_taken_for_an_installation_token(gh, results):
    gh.fault("GET", r"/user$", 403, {"message": "You have exceeded a secondary rate limit."}, {"Retry-After": "2"})
    m = mark(results)
    gh.add_comment(REPO, PR, m + "\nold", "quantgate-bot")
    c = client(gh)
    out = sync_comment(c, REPO, PR, render_for(results), marker=m)
    assert c.waits == [2.0] and out.action == "updated" and "quantgate-bot" in out.message
    assert [r.status for r in gh.requests if r.path == "/user"] == [403, 200]


def test_a_redirect_keeps_the_token_on_its_origin_and_drops_it_elsewhere(gh, results):
    with FakeGitHub() as other:  # another port: another origin, as GitHub's API could answer 307 to
        other.add_token(TOKEN, "quantgate-bot")  # a server that would accept the token must still not see it
        gh.fault("GET", r"/user$", 307, {"message": "moved"}, {"Location": other.base_url + "/user"})
        sync_comment(client(gh), REPO, PR, render_for(results), marker=mark(results))
        assert other.requests and all(r.authorization is None for r in other.requests)
    gh.fault("GET", r"/user$", 301, {"message": "moved"}, {"Location": gh.base_url + "/user?moved=1"})
    before = len(gh.requests)
    sync_comment(client(gh), REPO, PR, render_for(results), marker=mark(results))
    followed = [r for r in gh.requests[before:] if r.query.get("moved")]
    assert followed and followed[0].authorization == f"Bearer {TOKEN}"


def test_reproduce_installs_quantgate_from_where_it_ran(results):
    from quantgate.provenance import quantgate_source

    assert quantgate_source({"GITHUB_ACTION_REPOSITORY": "acme/quantgate", "GITHUB_ACTION_REF": "v1"}) == {
        "repository": "acme/quantgate",
        "ref": "v1",
        "from": "action",
    }
    # the image's build metadata, when the runner does not name the action (docker run)
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert quantgate_source({"QUANTGATE_SOURCE_REPOSITORY": "acme/qg", "QUANTGATE_SOURCE_REF": sha}) == {
        "repository": "acme/qg",
        "ref": sha,
        "commit": sha,
        "from": "image",
    }
    version = results.run_provenance["versions"]["quantgate"]
    hostile = quantgate_source({"GITHUB_ACTION_REPOSITORY": "acme/quantgate", "GITHUB_ACTION_REF": "v1; rm -rf /"})
    assert hostile["from"] != "action" and hostile["ref"] != "v1; rm -rf /"  # not a ref: ignored
    doc = results.to_json()
    doc["run_provenance"]["quantgate_source"] = {"repository": "acme/quantgate", "ref": "v1", "from": "action"}
    cmds = reproduce_commands(Results.from_json(doc))
    assert "pip install 'quantgate @ git+https://github.com/acme/quantgate@v1' && quantgate gate" in cmds[-2]
    assert " ghcr.io/acme/quantgate:v1 " in cmds[-1]  # the image the release workflow pushed for that tag
    # nothing recorded: no repository is made up (never quantgate/quantgate), and the lines say so
    doc["run_provenance"]["quantgate_source"] = {"repository": None, "ref": f"v{version}", "from": "unknown"}
    unknown = "\n".join(reproduce_commands(Results.from_json(doc)))
    assert "github.com" not in unknown and "ghcr.io" not in unknown and "quantgate/quantgate" not in unknown
    assert "was not recorded" in unknown and "\nquantgate gate --registry" in unknown


def test_warnings_reach_the_comment_at_most_ten_lines_then_a_pointer(results):
    from quantgate.report.comment import MAX_WARNINGS

    many = _many(results, 12, 0)
    rows = tuple(
        r.with_(warnings=(f"the int8 file is 1.{i:02d}x larger than fp32",)) for i, r in enumerate(many.models)
    )
    body = render_comment(dataclasses.replace(many, models=rows))
    lines = [ln for ln in body.splitlines() if ln.startswith("- ⚠️ ")]
    assert len(lines) == MAX_WARNINGS == 10
    assert "larger than fp32" in lines[0] and "`pass_model_00000`" in lines[0]
    assert "- _2 more warning(s) in the job summary_" in body


def test_marginal_and_time_capped_rows_carry_their_marks_everywhere(results):
    """A marginal row (❔) and a time-capped one (⏱) are marked in the comment, the markdown and
    the terminal, and `Row.outcome` tells them apart from a plain pass."""
    from quantgate.report.markdown import render_markdown
    from quantgate.report.terminal import line_for

    doc = results.to_json()
    good = next(r for r in doc["models"] if r["id"] == "good_mlp")
    assert Results.from_json(doc).row("good_mlp").outcome == "passed"
    good.update(marginal=True, on_marginal="fail", status="fail", reason="marginal: the interval straddles")
    capped = dict(good, id="slow_mlp", time_capped=True)
    doc["models"].append(capped)
    res = Results.from_json(doc)
    assert [res.row(i).outcome for i in ("good_mlp", "slow_mlp")] == ["marginal", "time-capped"]
    body = render_comment(res, env={})
    rows = {ln.split("`")[1]: ln for ln in body.splitlines() if ln.startswith("| ") and "`" in ln}
    assert rows["good_mlp"].startswith("| ❔❌ |") and rows["slow_mlp"].startswith("| ⏱❔❌ |")
    assert "2 marginal ❔" in body.splitlines()[1] and "1 time-capped ⏱" in body.splitlines()[1]
    md = render_markdown(res)
    assert "❔ marginal → ❌ fail" in md and "⏱ time-capped, ❔ marginal → ❌ fail" in md
    assert line_for(res.row("good_mlp")).startswith("[MARG ] good_mlp") and "→ FAIL" in line_for(res.row("good_mlp"))
    assert " time-capped " in line_for(res.row("slow_mlp"))
