"""The GitHub Action: the runner's environment in, the same gate the CLI runs, the Actions sinks out.

Settings come from the caller's options (`quantgate action --samples 8`), else from the
runner's `INPUT_<NAME>` variables, else from the defaults action.yml declares, so a plain
`docker run` needs no runner. The run writes the results JSON and markdown in the workspace, the
job summary, the step outputs, one annotation per failing model and (on a pull request) the
comment. The exit code is the gate's, except that violations alone exit 0 when
fail_on_violation is false; a crash exits 2 ("could not judge"), never 1 ("over budget").

`settings` reads and checks the inputs, `sinks` writes everything the run leaves behind; this
module runs the gate between them.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping

from ..errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, UserError
from ..report import actions
from ..text import plain
from .settings import INPUT_NAMES, Settings, input_env_name, input_name, read_input, relative_to_workspace
from .sinks import (
    VERBOSITY,
    draw_plots,
    emit,
    in_actions,
    mask,
    post_comment,
    report_error,
    say,
    write_results,
    write_step_files,
)


def _secrets(options: Mapping[str, str | None], env: Mapping[str, str]) -> list[str]:
    """The token under either input name, even the one not used: each is masked in the log."""
    token = (options.get("github_token") or read_input(env, "github_token") or "").strip()
    old_token = (env.get(input_env_name("github_token")) or "").strip()
    return list(dict.fromkeys(t for t in (token, old_token) if t))


def _gate(s: Settings, argv: list[str] | None):
    """The gate's run on the settings' selection, a line per model as it is measured."""
    from ..gate import run_gate
    from ..report.terminal import row_lines

    return run_gate(
        s.registry,
        s.models,
        root=s.working_directory,
        samples=s.samples,
        seed=s.seed,
        bench=s.bench,
        on_marginal=s.on_marginal,
        argv=argv if argv is not None else ["quantgate", "action"],
        progress=lambda row, i, n: say("\n".join(row_lines(row))),
    )


def _markdown(results, s: Settings):
    """The results markdown, and (input auto) the results with what `quantgate auto` would ship
    for each failing model: a suggestion, never the verdict."""
    from ..report.markdown import render_markdown

    suggested: list[str] = []
    if s.auto and results.counts.failed:
        from ..auto import suggest

        try:
            results, suggested = suggest(results, s.registry, root=s.working_directory, seed=s.seed)
        except UserError as e:
            said = f"auto could not run: {e.render(input_name)}"
            emit(actions.workflow_command("warning", said, title="quantgate auto"))
    markdown = render_markdown(results, show_skipped=s.show_skipped)
    if suggested:
        markdown += "\n**quantgate auto** (a dry run for each failing model; nothing was written)\n\n"
        markdown += "\n".join(suggested) + "\n"
    return results, markdown


def run(options: Mapping[str, str | None], env: Mapping[str, str], *, argv: list[str] | None = None) -> int:
    """One action run; `options` are the caller's values by input name (None: not given)."""
    for secret in _secrets(options, env):
        mask(secret, env)
    try:
        s = Settings.load(options, env)
    except UserError as e:
        return report_error(e.render(input_name), env)
    for old in s.old_inputs:
        say(f"quantgate: warning: input {old} is now {INPUT_NAMES[old]}; the old name still works", err=True)

    if s.plots is not None:  # before any work: a run never ends in an error after the gate
        from ..report.plots import check

        try:
            check(s.plots)
        except UserError as e:
            return report_error(e.render(input_name), env)
    from ..report.terminal import summary_line

    registry_file = relative_to_workspace(s.registry, s.workspace)
    os.chdir(s.working_directory)  # relative paths mean what they mean to the CLI run there
    try:
        results = _gate(s, argv)
    except UserError as e:
        return report_error(e.render(input_name), env, file=registry_file if s.registry.is_file() else None)

    results, markdown = _markdown(results, s)
    paths, unwritten = write_results(results, markdown, s, env)
    plots_path = draw_plots(results, s) if s.plots is not None else ""
    if in_actions(env):
        for line in actions.annotation_lines(results, registry_file):
            emit(line)
    else:
        say(markdown)
    comment = post_comment(results, s, env)
    outputs = actions.outputs_from_results(
        results, results_path=paths.get("out_json", ""), markdown_path=paths.get("markdown_out", "")
    )
    write_step_files(env, {**outputs, **comment, "plots_path": plots_path}, markdown, paths.get("markdown_out"))

    where = f"results in {plain(paths['out_json'])}" if "out_json" in paths else "the results JSON was not written"
    say(f"{summary_line(results)}; {where}", level=0)
    if unwritten:
        return EXIT_ERROR
    code = results.exit_code
    if code == EXIT_FAIL and not s.fail_on_violation:
        say("quantgate: fail-on-violation is false: the step passes despite the violations", level=0)
        return EXIT_PASS
    return code


def main(
    options: Mapping[str, str | None],
    env: Mapping[str, str] | None = None,
    *,
    argv: list[str] | None = None,
    verbosity: int = 1,
) -> int:
    """`run`, with a crash turned into exit 2 and an error in every sink (a bug, reported)."""
    env = os.environ if env is None else env
    VERBOSITY["level"] = verbosity
    try:
        return run(options, env, argv=argv)
    except Exception as e:
        traceback.print_exc()
        message = f"quantgate crashed ({type(e).__name__}: {e}); please report it with the log above"
        return report_error(message, env)
