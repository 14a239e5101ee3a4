"""The sticky pull-request comment: find ours, update / recreate it, or hand the body over.

One comment per pull request and registry. It is ours when its first line is the registry's
hidden marker AND its author is the identity that posts: the token's user (`GET /user`), or,
for the Actions `GITHUB_TOKEN` (an installation token, which `GET /user` refuses with 403),
`github-actions[bot]`; another GitHub App's token needs its `<slug>[bot]` login given
explicitly. A comment by anybody else that carries the marker is never edited or deleted.

Posting never decides anything about the gate: every failure becomes an `Outcome` (a fork's
read-only token -> `body_written`, the body saved for the companion workflow), never an
exception the caller has to know about.

The companion workflow's half lives here too: `sanitise_artifact` (the body a fork's run
uploaded is untrusted text) and `pr_for_workflow_run` (the PR comes from the triggering run's
head repository, branch and SHA, never from the artifact).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError, param
from ..paths import write_text
from ..report.comment import DEFAULT_MAX, GITHUB_LIMIT, MARKER_RE, size
from ..text import neutralise_mentions, plain
from . import context
from .client import GitHubClient, GitHubError, RateLimited, Transient

ACTIONS_BOT = "github-actions[bot]"
SHORT_MAX = 16000  # the second try after GitHub still answers 422 "Body is too long"
MODES = ("update", "recreate", "off")
DEFAULT_BODY_OUT = "quantgate-comment.md"
HEADLINES = (
    "✅ **quantgate: pass**",
    "❌ **quantgate: fail**",
    "⚠️ **quantgate: error**",
    "➖ **quantgate: nothing gated**",
)


@dataclass
class Outcome:
    """What happened to the comment; `action` is one of
    created, updated, recreated, unchanged, off, body_written, failed."""

    action: str
    repo: str | None = None
    pr: int | None = None
    comment_id: int | None = None
    url: str | None = None
    body_path: str | None = None
    message: str = ""

    @property
    def posted(self) -> bool:
        return self.action in ("created", "updated", "recreated", "unchanged")

    def to_json(self) -> dict:
        return {**asdict(self), "posted": self.posted}


@dataclass(frozen=True)
class Identity:
    login: str
    source: str  # "user" (GET /user), "github-actions" (installation token), "given"


def _dict(v: object) -> dict:
    """A JSON object from an answer or a payload, else {}: a field of another type is missing."""
    return v if isinstance(v, dict) else {}


def _str(v: object) -> str:
    return v if isinstance(v, str) else ""


def _id(comment: dict, repo: str, pr: int) -> int:
    """A listed comment's id, which goes into the next request's path: a positive integer, or
    the answer is malformed (a string id could point the token at another endpoint)."""
    cid = comment.get("id")
    if isinstance(cid, int) and not isinstance(cid, bool) and cid > 0:
        return cid
    raise GitHubError(
        "GET", f"/repos/{repo}/issues/{pr}/comments", None, "malformed answer: a comment without a numeric id"
    )


def whoami(client: GitHubClient, given: str | None = None) -> Identity:
    if given:
        return Identity(given, "given")
    try:
        data = client.request("GET", "/user").data
    except GitHubError as e:
        # GITHUB_TOKEN (an installation token) may not read /user: GitHub answers 403
        # "Resource not accessible by integration"; what it posts is authored by github-actions[bot].
        if e.status == 403 and not isinstance(e, RateLimited):
            return Identity(ACTIONS_BOT, "github-actions")
        raise
    login = _str(_dict(data).get("login"))
    if not login:
        return Identity(ACTIONS_BOT, "github-actions")
    return Identity(login, "user")


def is_ours(comment: dict, marker: str, login: str) -> bool:
    author = _str(_dict(_dict(comment).get("user")).get("login"))
    return has_marker(comment, marker) and author.lower() == login.lower()


def has_marker(comment: dict, marker: str) -> bool:
    return _str(_dict(comment).get("body")).split("\n", 1)[0].strip() == marker


def find_ours(client: GitHubClient, repo: str, pr: int, marker: str, login: str) -> tuple[list[dict], int]:
    """Our comments (oldest first) over every page, and how many others carry the marker."""
    ours, foreign = [], 0
    for c in client.paginate(f"/repos/{repo}/issues/{pr}/comments"):
        if is_ours(c, marker, login):
            _id(c, repo, pr)
            ours.append(c)
        elif has_marker(c, marker):
            foreign += 1
    return ours, foreign


def _save(body: str, path: str | Path | None) -> str | None:
    if path is None:
        return None
    write_text(path, body)
    return str(path)


def sync_comment(
    client: GitHubClient | None,
    repo: str | None,  # None only with mode "off"
    pr: int | None,
    render: Callable[[int], str],
    *,
    marker: str,
    mode: str = "update",
    author: str | None = None,
    body_out: str | Path | None = None,
) -> Outcome:
    """Make the PR carry exactly one up-to-date comment of ours for this marker.

    `render(max_bytes)` returns the body; it is asked again, shorter, if GitHub still says the
    body is too long. Never raises for anything GitHub answers.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    body = render(DEFAULT_MAX)
    if mode == "off":
        path = _save(body, body_out or DEFAULT_BODY_OUT)
        return Outcome("off", repo, pr, body_path=path, message="comment mode is off")
    if client is None or not client.token:
        path = _save(body, body_out or DEFAULT_BODY_OUT)
        return Outcome(
            "body_written",
            repo,
            pr,
            body_path=path,
            message=f"no token (GITHUB_TOKEN or the github_token input); body written to {path}",
        )
    try:
        who = whoami(client, author)
        return _sync(client, repo, pr, body, render, marker, mode, who.login)
    except GitHubError as e:  # malformed answers included: one line, never a traceback
        if e.not_accessible:
            path = _save(body, body_out or DEFAULT_BODY_OUT)
            return Outcome(
                "body_written",
                repo,
                pr,
                body_path=path,
                message=f"the token may not write comments here ({e}); this is what a pull "
                f"request from a fork gets. Body written to {path} for the companion "
                "workflow (see docs/comment.md)",
            )
        path = _save(body, body_out)
        return Outcome("failed", repo, pr, body_path=path, message=str(e))


def _sync(client, repo, pr, body, render, marker, mode, login) -> Outcome:
    ours, _foreign = find_ours(client, repo, pr, marker, login)
    if mode == "recreate":
        for c in ours:
            client.request("DELETE", f"/repos/{repo}/issues/comments/{_id(c, repo, pr)}")
        created = _create(client, repo, pr, body, render, marker, login)
        return Outcome("recreated" if ours else "created", repo, pr, *_where(created), message=f"as {login}")
    if ours:
        keep, extra = ours[0], ours[1:]
        # Duplicates of ours (an earlier run that raced us) go; the oldest keeps its place.
        for c in extra:
            client.request("DELETE", f"/repos/{repo}/issues/comments/{_id(c, repo, pr)}")
        if _str(keep.get("body")) == body:
            return Outcome("unchanged", repo, pr, *_where(keep), message=f"as {login}")
        updated = _with_shorter(
            lambda b: client.request(
                "PATCH", f"/repos/{repo}/issues/comments/{_id(keep, repo, pr)}", json_body={"body": b}
            ),
            body,
            render,
        )
        return Outcome("updated", repo, pr, *_where({**keep, **_dict(updated.data)}), message=f"as {login}")
    created = _create(client, repo, pr, body, render, marker, login)
    return Outcome("created", repo, pr, *_where(created), message=f"as {login}")


def _where(comment: dict) -> tuple[int | None, str | None]:
    """(id, link) of a comment as GitHub answered it; a field of the wrong type is left out."""
    cid, url = comment.get("id"), comment.get("html_url")
    ok_id = isinstance(cid, int) and not isinstance(cid, bool)
    return (cid if ok_id else None), (url if isinstance(url, str) and url.startswith("https://") else None)


def _with_shorter(send, body: str, render: Callable[[int], str]):
    try:
        return send(body)
    except GitHubError as e:
        if not e.too_long:
            raise
    return send(render(SHORT_MAX))


def _create(client, repo, pr, body, render, marker, login) -> dict:
    path = f"/repos/{repo}/issues/{pr}/comments"
    for attempt in range(2):
        try:
            resp = _with_shorter(lambda b: client.request("POST", path, json_body={"body": b}), body, render)
            return _dict(resp.data)
        except Transient:
            # The POST may have landed although no answer came: look before posting again.
            ours, _ = find_ours(client, repo, pr, marker, login)
            if ours:
                return ours[-1]
            if attempt == 1:
                raise
    return {}


# -- the companion workflow (workflow_run) ----------------------------------------------------

_HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


# What a refused artifact should have been: the body the gating run's `comment` wrote.
_ARTIFACT_FIX = "upload the body that `quantgate comment --body-out FILE` wrote"


def sanitise_artifact(raw: bytes, *, source: str = "artifact") -> tuple[str, str]:
    """Untrusted comment body from a fork's run -> (body safe to post, its marker line).

    Refuses anything over GitHub's limit, not UTF-8, or not shaped like our comment (our
    marker on the first line, our verdict line next). Drops every other HTML comment (so no
    second marker or hidden text rides along), control and bidi characters, and neutralises
    `@mentions` so nobody is pinged by what a fork wrote.
    """
    if len(raw) > GITHUB_LIMIT:
        raise UserError(
            f"{len(raw)} bytes, over the {GITHUB_LIMIT}-byte cap, not posting it", subject=source, fix=_ARTIFACT_FIX
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text, not posting it", subject=source, fix=_ARTIFACT_FIX) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first, _, rest = text.partition("\n")
    first = first.strip().lstrip("\ufeff")
    if not MARKER_RE.match(first):
        raise UserError(
            "not a quantgate marker ('<!-- quantgate:comment registry=... -->'), not posting it",
            subject=source,
            field="first line",
            fix=_ARTIFACT_FIX,
        )
    # Until nothing changes: `<!<!-- x -->-- hidden -->` is a comment again once the inner one goes.
    while True:
        stripped = _CONTROL.sub("", _HTML_COMMENT.sub("", rest))
        if stripped == rest:
            break
        rest = stripped
    rest = rest.replace("<!--", "&lt;!--")
    second = rest.split("\n", 1)[0]
    if not second.startswith(HEADLINES):
        raise UserError(
            "not a quantgate verdict line, not posting it", subject=source, field="second line", fix=_ARTIFACT_FIX
        )
    body = first + "\n" + neutralise_mentions(rest)
    if size(body) > GITHUB_LIMIT:  # the zero-width spaces can add a little
        raise UserError(
            f"over {GITHUB_LIMIT} bytes after sanitising, not posting it", subject=source, fix=_ARTIFACT_FIX
        )
    return body, first


def workflow_run_from_event(event_path: str | None) -> dict:
    if not event_path:
        raise UserError(
            f"not set; {param('workflow_run_event')} needs the workflow_run event payload",
            subject="GITHUB_EVENT_PATH",
            fix="run this from an `on: workflow_run` workflow",
        )
    event = context.load_event(event_path, strict=True)
    wr = event.get("workflow_run")
    if not isinstance(wr, dict):
        raise UserError(
            "missing", subject=event_path, field="workflow_run", fix="run this from an `on: workflow_run` workflow"
        )
    return wr


def pr_for_workflow_run(client: GitHubClient, repo: str, wr: dict) -> tuple[int | None, str]:
    """The open PR of `repo` whose head is the triggering run's head (repository, branch, SHA).

    Returns (number, how) or (None, why). The artifact is never asked.
    """
    event = wr.get("event")
    if event != "pull_request":
        return None, f"the triggering run was a '{plain(str(event))[:40]}' event, not pull_request"
    sha = _str(wr.get("head_sha"))
    head_repo = _str(_dict(wr.get("head_repository")).get("full_name"))
    branch = _str(wr.get("head_branch"))
    if not re.fullmatch(r"[0-9a-f]{40}", sha) or not context.REPO_RE.fullmatch(head_repo):
        return None, "the triggering run has no head SHA or head repository (workflow_run.head_sha, head_repository)"
    owner = head_repo.split("/", 1)[0]

    def number(p: object) -> int | None:
        head = _dict(_dict(p).get("head"))
        if head.get("sha") != sha or _str(_dict(head.get("repo")).get("full_name")) != head_repo:
            return None
        n = _dict(p).get("number")
        if not (isinstance(n, int) and not isinstance(n, bool) and n > 0):
            raise GitHubError("GET", f"/repos/{repo}/pulls", None, "malformed answer: a pull request without a number")
        return n

    if branch:
        for p in client.paginate(f"/repos/{repo}/pulls", {"state": "open", "head": f"{owner}:{branch}"}):
            if (n := number(p)) is not None:
                return n, f"head {head_repo}:{plain(branch)} at {sha[:12]}"
    for p in client.paginate(f"/repos/{repo}/pulls", {"state": "open"}):
        if (n := number(p)) is not None:
            return n, f"head SHA {sha[:12]} of {head_repo}"
    return None, (
        f"no open pull request of {repo} has head {head_repo}:{plain(branch)} at {sha[:12]} "
        "(closed, or pushed again since: the newer run will comment)"
    )


def client_for(token: str | None, env) -> GitHubClient:
    """The REST client for `token` at the API `env` names (GITHUB_API_URL); one line when it
    cannot be made."""
    try:
        return GitHubClient.from_env(token, env)
    except ValueError as e:
        raise UserError(str(e), fix="set the variable right, or unset it") from None


def post_results(
    doc,
    env,
    *,
    token: str | None,
    repo: str | None = None,
    pr: int | None = None,
    mode: str = "update",
    author: str | None = None,
    image: str | None = None,
    show_skipped: bool = False,
    body_out: str | Path | None = None,
) -> Outcome:
    """Post (or update) the sticky comment of the results document `doc` (`results.Results`) on
    pull request `pr` of `repo` (default: from `env`, GitHub's variables and event); `mode` "off"
    only renders. A comment that cannot be posted is the outcome's message, never an exception;
    a missing repository or pull request is a `UserError`. What `quantgate comment` and the
    action both call."""
    from ..report.comment import marker, render_comment

    if mode == "off":  # render only: no repository or pull request needed
        repo = context.repository(repo, env) if (repo or env.get("GITHUB_REPOSITORY")) else None
    else:
        repo = context.repository(repo, env)
    if pr is None:
        pr = context.pull_request_number(context.load_event(env.get("GITHUB_EVENT_PATH"), strict=True))
    if pr is None and mode != "off":
        raise UserError(
            "no pull request context (the event at GITHUB_EVENT_PATH has no pull_request)",
            subject=param("pr"),
            fix=f"pass {param('pr')} N",
        )
    client = client_for(token, env) if token and mode != "off" else None
    return sync_comment(
        client,
        repo,
        pr,
        lambda n: render_comment(doc, max_chars=n, env=env, image=image, show_skipped=show_skipped),
        marker=marker(doc.registry),
        mode=mode,
        author=author,
        body_out=body_out,
    )


def outcome_line(outcome: Outcome, body: str | None = None) -> tuple[str, bool]:
    """The one status line of a comment's outcome, and whether it is a warning (not posted).
    `body`: where the body was written, as the line names it."""
    where = f" {outcome.url}" if outcome.url else ""
    if outcome.action == "off":
        return "quantgate: comment off" + (f"; body written to {body}" if body else ""), False
    if outcome.posted:
        return f"quantgate: comment {outcome.action}{where} ({outcome.repo}#{outcome.pr})", False
    return f"quantgate: warning: comment not posted ({outcome.action}): {outcome.message}", True
