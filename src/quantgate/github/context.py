"""The GitHub context of a run, read from the runner's environment in one place: the token, the
repository, the event payload and the pull request it is about."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .. import limits
from ..errors import UserError, param

REPO_RE = re.compile(r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+")
# Environment variables a token may arrive in; the action's explicit input wins.
TOKEN_VARIABLES = ("INPUT_GITHUB-TOKEN", "INPUT_GITHUB_TOKEN", "GITHUB_TOKEN")


def token(env: Mapping[str, str]) -> str | None:
    """The token to post with: the action's `github-token` input (or its old name `github_token`),
    else an ambient GITHUB_TOKEN; refused (without showing it) when it is not one (`check_token`)."""
    for name in TOKEN_VARIABLES:
        v = (env.get(name) or "").strip()
        if v:
            return check_token(v, name)
    return None


def check_token(value: str, source: str) -> str:
    """`value` when it can be a token: printable ASCII without white space, as every GitHub
    token is. A line break in it would split the `::add-mask::` that hides it (its second line
    printed in clear, a third run as a workflow command) and the Authorization header that sends
    it. The error line never shows the value."""
    if value.isascii() and value.isprintable() and not any(ch.isspace() for ch in value):
        return value
    what = "a line break" if any(ch in value for ch in "\r\n") else "white space or a character no token has"
    raise UserError(
        f"holds {what}, so it is not a token (not shown here)",
        subject=source,
        fix="pass the token alone on one line (check the secret the workflow gives it)",
    )


def repository(given: str | None, env: Mapping[str, str]) -> str:
    """OWNER/NAME from the caller, else GITHUB_REPOSITORY; refused unless it has that shape."""
    repo = given or env.get("GITHUB_REPOSITORY")
    if not repo:
        raise UserError(
            "not given and GITHUB_REPOSITORY is not set", subject=param("repo"), fix=f"pass {param('repo')} OWNER/NAME"
        )
    if not REPO_RE.fullmatch(repo) or repo.startswith(".") or ".." in repo:
        raise UserError(
            f"'{repo}' is not OWNER/NAME", subject=param("repo"), fix=f"pass e.g. {param('repo')} octo-org/models"
        )
    return repo


def load_event(path: str | None, *, strict: bool) -> dict[str, Any]:
    """The event payload at `path` (GITHUB_EVENT_PATH). Missing, unreadable or not an object:
    `{}`, or with `strict` a `UserError` naming the file."""
    if not path:
        return {}
    try:  # a regular file of bounded size only: a FIFO here must not hang the run
        data = json.loads(limits.read_bytes(path, limits.RESULTS_BYTES, what="event payload").decode("utf-8"))
    except (OSError, ValueError, RecursionError, UserError) as e:
        if strict:
            why = e.problem if isinstance(e, UserError) else type(e).__name__
            raise UserError(
                f"cannot read the event payload ({why})", subject=path, fix=f"pass {param('pr')} N"
            ) from None
        return {}
    return data if isinstance(data, dict) else {}


def _number(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def pull_request_number(event: Mapping[str, Any]) -> int | None:
    """The pull request an event is about: a pull_request(_target) event, or a comment on a
    pull request (issue_comment); None for push, schedule, workflow_dispatch, ..."""
    pr = event.get("pull_request")
    if isinstance(pr, dict):
        return _number(pr.get("number", event.get("number")))
    issue = event.get("issue")
    if isinstance(issue, dict) and issue.get("pull_request"):
        return _number(issue.get("number"))
    return None
