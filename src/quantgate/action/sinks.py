"""Where an action run's results go: its log lines and workflow commands, the results files in
the workspace, the step outputs and job summary, the pictures and the pull-request comment. Each
sink that fails is a line of its own (an error for a results file, a warning for the others);
none changes the verdict."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

from ..errors import EXIT_ERROR, UserError, one_line
from ..github import context
from ..paths import write_json, write_text
from ..report import actions
from ..text import log_line, plain
from .settings import Settings, input_name, relative_to_workspace

COMMENT_BODY_FILE = "quantgate-comment.md"


def in_actions(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


# How much the run prints: 0 only the result and errors, 1 a line per model, 2 more (-q, -v).
VERBOSITY = {"level": 1}


def say(text: str, *, err: bool = False, level: int = 1) -> None:
    """Print lines that may hold data (ids, reasons, inputs) so that none can start a line of its
    own: the runner obeys any line that starts with `::`. Errors and level-0 lines always print."""
    if not err and level > VERBOSITY["level"]:
        return
    shown = "\n".join(log_line(line) for line in str(text).split("\n"))
    print(shown, file=sys.stderr if err else sys.stdout, flush=True)


def emit(line: str) -> None:
    """A workflow command this action means to give (its data escaped by `actions.workflow_command`)."""
    print(line, flush=True)


def mask(secret: str, env: Mapping[str, str]) -> None:
    """Hide `secret` in every later log line of the job. One mask per line: a mask is one line, so
    a secret with a line break would leave its next lines in clear."""
    if in_actions(env):
        for part in sorted({p.strip() for p in re.split(r"[\r\n]+", secret)} - {""}):
            emit(f"::add-mask::{actions.escape_data(part)}")


def report_error(message: str, env: Mapping[str, str], *, file: str | None = None) -> int:
    """A run that produced no results: one line, an annotation, outputs and summary say so."""
    say(f"quantgate: error: {plain(message)}", err=True)
    if in_actions(env):
        emit(actions.workflow_command("error", message, file=file, title="quantgate could not run"))
    write_step_files(env, actions.outputs_from_results(None), actions.error_summary(message), None)
    return EXIT_ERROR


def write_step_files(env: Mapping[str, str], outputs: dict, summary: str | None, full_copy: str | None) -> None:
    """The step outputs and the job summary (`full_copy`: where the whole table is, should the
    summary have to be cut); one that cannot be written is a warning."""
    out_file = env.get("GITHUB_OUTPUT")
    if out_file:
        try:
            actions.write_outputs(out_file, outputs)
        except OSError as e:
            emit(actions.workflow_command("warning", f"could not write step outputs to {out_file}: {e}"))
    summary_file = env.get("GITHUB_STEP_SUMMARY")
    if summary_file and summary:
        try:
            if actions.append_summary(summary_file, summary, full_copy=full_copy):
                emit(
                    actions.workflow_command(
                        "warning",
                        "the results table was too long for the job summary and was cut; "
                        f"the full table is in {full_copy}",
                    )
                )
        except OSError as e:
            emit(actions.workflow_command("warning", f"could not write the job summary to {summary_file}: {e}"))


def write_results(results, markdown: str, s: Settings, env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The results JSON and markdown, each file on its own: one that cannot be written (a
    read-only mount, a path below a file or inside .git, a name too long, a full disk) is one
    line, and everything else still happens: the other file, the annotations, the job summary,
    the outputs, the comment. Returns (input name -> path written, relative to the workspace;
    the lines of the files not written)."""
    assert s.out_json is not None and s.markdown_out is not None
    paths: dict[str, str] = {}
    unwritten: list[str] = []
    for name, target, write in (
        ("out_json", s.out_json, lambda p: write_json(p, results)),
        ("markdown_out", s.markdown_out, lambda p: write_text(p, markdown)),
    ):
        try:
            write(target)
            paths[name] = relative_to_workspace(target, s.workspace)
        except (UserError, OSError) as e:
            why = e.render(input_name) if isinstance(e, UserError) else f"{target}: cannot be written ({e})"
            unwritten.append(f"{input_name(name)}: {why}")
    for why in unwritten:
        say(f"quantgate: error: {why}", err=True)
        if in_actions(env):
            emit(actions.workflow_command("error", why, title="quantgate could not write a results file"))
    return paths, unwritten


def post_comment(results, s: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """Post the sticky comment of `results` on a pull request (`github.comment.post_results`,
    what `quantgate comment` calls); returns the comment outputs.

    Never changes the exit code: a comment that was not posted (a fork's read-only token, no
    network, an error of the comment's own) is a warning, and the verdict stands. When it could
    not be posted the body is left in `quantgate-comment.md` at the workspace root for the
    companion workflow.
    """
    from ..github.comment import outcome_line, post_results

    none = {"comment": "", "comment_url": ""}
    event_name = env.get("GITHUB_EVENT_NAME")
    if not s.comment:
        return none
    if context.pull_request_number(context.load_event(env.get("GITHUB_EVENT_PATH"), strict=False)) is None:
        say(f"quantgate: no pull request in this run ({plain(event_name or 'no event')}); no comment")
        return none
    try:
        outcome = post_results(
            results,
            env,
            token=s.github_token or context.token(env),
            show_skipped=s.show_skipped,
            body_out=s.workspace / COMMENT_BODY_FILE,
        )
    except UserError as e:
        why = e.render(input_name)
    except Exception as e:  # the comment's own failure: a warning, never the verdict's
        why = f"unexpected {type(e).__name__}: {one_line(e, 200)}"
    else:
        line, warning = outcome_line(outcome, outcome.body_path)
        say(line, err=warning)
        if outcome.posted:
            return {"comment": outcome.action, "comment_url": outcome.url or ""}
        why = outcome.message
        none = {"comment": outcome.action, "comment_url": outcome.url or ""}
    emit(
        actions.workflow_command(
            "warning", f"the pull-request comment was not posted: {why}; the verdict stands", title="quantgate comment"
        )
    )
    return {"comment": none["comment"] or "failed", "comment_url": none["comment_url"]}


def draw_plots(results, s: Settings) -> str:
    """The pictures of every measured model into `s.plots`; a warning, never the verdict, when
    they cannot be drawn. Returns the folder relative to the workspace ('' when none was drawn)."""
    from ..report.plots import gate_plots

    assert s.plots is not None
    try:
        drawn = gate_plots(results, s.registry, s.plots, seed=s.seed)
    except UserError as e:
        emit(actions.workflow_command("warning", f"no pictures: {e.render(input_name)}", title="quantgate plots"))
        return ""
    say(f"quantgate: {len(drawn)} picture(s) in {relative_to_workspace(s.plots, s.workspace)}")
    return relative_to_workspace(s.plots, s.workspace)
