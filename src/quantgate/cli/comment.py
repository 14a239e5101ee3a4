"""`quantgate comment`: post (or update) the sticky pull-request comment of a results document.

Exit codes: 0 whenever the command was used correctly, posted or not (a comment that cannot be
posted is a warning on stderr: it never changes the gate's verdict); 2 for a user mistake
(missing or unreadable results, no pull-request context, a malformed --repo) or a refused
artifact in --from-artifact mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from .. import limits
from ..errors import EXIT_PASS, UserError, param
from ..github import context
from ..github.comment import MODES
from .base import Command, echo, renamed


def _report(outcome, outcome_json: Path | None, *, body_on_stdout: bool = False) -> None:
    """The outcome file, and one status line: on standard error when the body (or the outcome)
    went to standard output, so that a pipe gets the document alone."""
    from ..paths import STDOUT, write_json

    if outcome_json:
        write_json(outcome_json, outcome)
    from ..github.comment import outcome_line

    to_stderr = body_on_stdout or str(outcome_json) == STDOUT
    body = "standard output" if outcome.body_path == STDOUT else outcome.body_path
    line, warning = outcome_line(outcome, body)
    echo(line, err=to_stderr or warning, level=0)


@click.command(cls=Command)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="The results document `quantgate gate --json-out` wrote; - reads it from standard input.",
)
@click.option("--repo", help="OWNER/NAME (default: GITHUB_REPOSITORY).")
@click.option(
    "--pr",
    type=click.IntRange(min=1),
    help="Pull request number (default: from the event payload at GITHUB_EVENT_PATH).",
)
@click.option(
    "--mode",
    type=click.Choice(list(MODES)),
    default="update",
    show_default=True,
    help="update: edit our comment in place; recreate: delete it and "
    "post anew (moves it to the bottom); off: only render (and write --body-out).",
)
@click.option(
    "--body-out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Where the body goes when it is not posted: with --mode off, and when it cannot be posted "
    "(a fork's read-only token) [default: quantgate-comment.md]; - for standard output.",
)
@click.option(
    "--outcome-out",
    "outcome_json",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Write what happened as JSON: action (created, updated, recreated, unchanged, "
    "off, body_written, failed), posted, repo, pr, comment_id, url, body_path, message.",
)
@renamed("--outcome-json", "outcome_json", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--show-skipped",
    is_flag=True,
    help="List every fp32 entry (nothing to gate) in the table; by default they are one count line.",
)
@click.option(
    "--author",
    default=None,
    help="Login our comments are posted as, when the token "
    "cannot say (a GitHub App's token: '<app-slug>[bot]'). Default: GET /user, else "
    "github-actions[bot].",
)
@click.option(
    "--image",
    default=None,
    help="Container image named in the reproduce command "
    "(default: QUANTGATE_IMAGE or ghcr.io/quantgate/quantgate:<version>).",
)
@click.option(
    "--from-artifact",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Post a body a fork's run saved (untrusted: checked and sanitised first).",
)
@click.option(
    "--workflow-run-event",
    is_flag=True,
    help="Find the PR from the workflow_run event at GITHUB_EVENT_PATH (head repository, "
    "branch, SHA of the triggering run). For the companion workflow.",
)
def comment(
    results, repo, pr, mode, body_out, outcome_json, show_skipped, author, image, from_artifact, workflow_run_event
) -> int:
    """Post or update the sticky pull-request comment with a results document's table.

    Token: INPUT_GITHUB_TOKEN or GITHUB_TOKEN; API: GITHUB_API_URL (Enterprise Server too).
    A comment that cannot be posted is a warning and exit 0: the gate's verdict stands.

    \b
    Examples:
      quantgate comment --results quantgate-results.json --repo acme/models --pr 12
      quantgate comment --results r.json --mode off                  # render only, to quantgate-comment.md
      quantgate gate --json-out - | quantgate comment --results - --mode off --body-out -
    """
    from ..github.comment import client_for, post_results, sanitise_artifact, sync_comment
    from ..paths import STDOUT
    from ..results import Results

    env = os.environ
    if (results is None) == (from_artifact is None):
        raise click.UsageError("give exactly one of --results RESULTS.json and --from-artifact FILE")
    if workflow_run_event and from_artifact is None:
        raise click.UsageError("--workflow-run-event goes with --from-artifact")
    token = context.token(env)

    if from_artifact is not None:
        repo = context.repository(repo, env)
        try:  # a regular file of bounded size only: a FIFO must not hang the companion workflow
            raw = limits.read_bytes(from_artifact, limits.RESULTS_BYTES, what="artifact")
        except OSError as e:
            raise UserError(f"cannot read the artifact ({type(e).__name__})", subject=str(from_artifact)) from None
        body, mark = sanitise_artifact(raw, source=str(from_artifact))
        client = client_for(token, env)
        if pr is None and workflow_run_event:
            from ..github.client import GitHubError
            from ..github.comment import Outcome, pr_for_workflow_run, workflow_run_from_event

            wr = workflow_run_from_event(env.get("GITHUB_EVENT_PATH"))
            try:
                pr, how = pr_for_workflow_run(client, repo, wr)
            except GitHubError as e:
                pr, how = None, str(e)
            if pr is None:
                _report(Outcome("failed", repo, None, message=f"no pull request to comment on: {how}"), outcome_json)
                return EXIT_PASS
        if pr is None:
            raise UserError(
                "not given", subject=param("pr"), fix=f"pass {param('pr')} N or {param('workflow_run_event')}"
            )
        outcome = sync_comment(
            client, repo, pr, lambda _n: body, marker=mark, mode=mode, author=author, body_out=body_out
        )
        _report(outcome, outcome_json, body_on_stdout=str(body_out) == STDOUT)
        return EXIT_PASS

    doc = Results.read(results)
    outcome = post_results(
        doc,
        env,
        token=token,
        repo=repo,
        pr=pr,
        mode=mode,
        author=author,
        image=image,
        show_skipped=show_skipped,
        body_out=body_out,
    )
    _report(outcome, outcome_json, body_on_stdout=str(body_out) == STDOUT)
    return EXIT_PASS
