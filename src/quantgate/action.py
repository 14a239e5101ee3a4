"""The GitHub Action: the runner's environment in, the same gate the CLI runs, the Actions sinks out.

Settings come from the caller's options (`quantgate action --samples 8`), else from the
runner's `INPUT_<NAME>` variables, else from the defaults action.yml declares, so a plain
`docker run` needs no runner. The run writes the results JSON and markdown in the workspace, the
job summary, the step outputs, one annotation per failing model and (on a pull request) the
comment. The exit code is the gate's, except that violations alone exit 0 when
fail_on_violation is false; a crash exits 2 ("could not judge"), never 1 ("over budget").
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, UserError, one_line
from .gate.settings import DEFAULT_ON_MARGINAL, DEFAULT_SEED, MARGINAL_POLICIES
from .github import context
from .paths import confine, refuse_clobber, write_json, write_text
from .registry import DEFAULT_REGISTRY
from .report import actions
from .text import log_line, plain

# The action's inputs and their defaults, as action.yml declares them.
DEFAULTS = {
    "registry": DEFAULT_REGISTRY,
    "models": "",
    "fail_on_violation": "true",
    "out_json": "quantgate-results.json",
    "markdown_out": "quantgate-results.md",
    "comment": "true",
    "github_token": "",
    "samples": "auto",
    "seed": str(DEFAULT_SEED),
    "bench": "false",
    "auto": "false",
    "plots": "",
    "on_marginal": DEFAULT_ON_MARGINAL,
    "working_directory": ".",
    "show_skipped": "false",
}
# How action.yml names each input: kebab-case, as GitHub's own actions do, and the CLI's option
# scheme (`json-out`, `markdown-out`). The snake_case ids of quantgate 0.1 are still read.
INPUT_NAMES = {name: name.replace("_", "-") for name in DEFAULTS} | {"out_json": "json-out"}
# (show_skipped and on_marginal came after the rename: they never had a snake_case id)
OLD_INPUT_NAMES = {name: name for name in DEFAULTS if "_" in name and name not in ("show_skipped", "on_marginal")}
COMMENT_BODY_FILE = "quantgate-comment.md"

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


def input_name(name: str) -> str:
    """How the action words a library parameter in an error line (its kebab-case input id)."""
    return f"input {INPUT_NAMES.get(name, name)}"


def input_env_name(name: str) -> str:
    """The variable the runner sets for an input id: upper-cased, spaces turned into '_' (hyphens
    stay: `json-out` arrives as INPUT_JSON-OUT, which Python reads and a shell cannot)."""
    return "INPUT_" + name.replace(" ", "_").upper()


def read_input(env: Mapping[str, str], name: str, old_used: list[str] | None = None) -> str:
    """An input's raw value, stripped; '' when unset (the runner sends '' for unset inputs too).

    `name` is the library's name; the value comes from the kebab-case input, else from the
    snake_case id quantgate 0.1 declared (then noted in `old_used`). On a runner the kebab-case
    input always arrives, holding its default when not given, so an old id that is given wins
    over a new one that holds its default (for github-token, whose default is the workflow's
    token, the old id given always wins); both given with different values is a mistake."""
    new_name = INPUT_NAMES.get(name, name)
    value = (env.get(input_env_name(new_name)) or "").strip()
    old_name = OLD_INPUT_NAMES.get(name)
    if old_name is None or old_name == new_name:
        return value
    old = (env.get(input_env_name(old_name)) or "").strip()
    if not old:
        return value
    if old_used is not None:
        old_used.append(old_name)
    if not value or value == DEFAULTS.get(name) or name == "github_token" or value == old:
        return old
    raise UserError(
        f"both {new_name} and its old name {old_name} are set, to different values",
        subject=input_name(name),
        fix=f"keep {new_name} only",
    )


def parse_bool(raw: str, *, name: str, default: bool) -> bool:
    value = raw.strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UserError(f"'{raw}' is not a boolean", subject=input_name(name), fix="use true or false")


def parse_int(raw: str, *, name: str, default: int, minimum: int | None = None) -> int:
    value = raw.strip()
    if not value:
        return default
    try:
        n = int(value, 10)
    except ValueError:
        raise UserError(f"'{raw}' is not a whole number", subject=input_name(name), fix=f"e.g. {default}") from None
    if minimum is not None and n < minimum:
        raise UserError(f"{n} is below {minimum}", subject=input_name(name), fix=f"e.g. {default}")
    return n


def parse_choice(raw: str, choices: tuple[str, ...], *, name: str) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise UserError(
            f"'{raw}' is not one of {', '.join(choices)}", subject=input_name(name), fix=f"use {choices[0]}"
        )
    return value


def parse_ids(raw: str) -> list[str]:
    """Model ids separated by commas, spaces or new lines (a YAML block scalar works too), or a
    JSON array of strings (`["my model", "a,b"]`) for ids that hold a space or a comma."""
    text = raw.strip()
    if text.startswith("["):
        try:
            ids = json.loads(text)
        except ValueError:
            ids = None
        if not (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids)):
            raise UserError(
                "starts with '[' but is not a JSON array of ids",
                subject=input_name("models"),
                fix='write e.g. ["my model", "a,b"], or the ids separated by commas',
            )
        return ids
    return [part for part in re.split(r"[\s,]+", text) if part]


# Characters no path input may hold: line breaks and other controls, shown on a line of their own
# or taken for a workflow command wherever the path is printed.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
PATH_INPUTS = ("registry", "out_json", "markdown_out", "plots", "working_directory")


def confine_to_workspace(raw: str, base: Path, workspace: Path, *, what: str) -> Path:
    """`raw` resolved against `base`, refused when it leaves `workspace`.

    An absolute path is accepted only when it already points inside the workspace (as
    `/github/workspace/...` does in the container); `..` and symlinks that lead out are refused.
    """
    if os.path.isabs(raw):
        ws = workspace.resolve()
        p = Path(raw).resolve()
        if p != ws and ws not in p.parents:
            raise UserError(f"'{raw}' is outside the workspace {ws}", subject=what, fix="give a path relative to it")
        raw = os.path.relpath(p, base.resolve())
    return confine(raw, base, workspace, what=what)


def relative_to_workspace(path: Path, workspace: Path) -> str:
    """How a later step (running on the host, in the workspace) names the same file."""
    try:
        return path.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return str(path)


@dataclass
class Settings:
    """The action's inputs, typed and checked: every path confined to the workspace."""

    workspace: Path
    working_directory: Path
    registry: Path
    models: list[str] = field(default_factory=list)
    fail_on_violation: bool = True
    out_json: Path | None = None
    markdown_out: Path | None = None
    comment: bool = True
    github_token: str = ""
    samples: int | None = None  # None: adaptive sampling
    seed: int = DEFAULT_SEED
    bench: bool = False  # also time fp32 against int8 on the runner
    auto: bool = False  # for each failing model, what `quantgate auto` would ship (a dry run)
    plots: Path | None = None  # a folder for the pictures (scatter, error histogram per model)
    show_skipped: bool = False  # list fp32 entries in the summary and comment (else one count line)
    old_inputs: list[str] = field(default_factory=list)  # snake_case input ids given (renamed)
    on_marginal: str = DEFAULT_ON_MARGINAL  # what a marginal row counts as

    @classmethod
    def load(cls, options: Mapping[str, str | None], env: Mapping[str, str]) -> Settings:
        """Options win over `INPUT_*`, which win over the defaults; '' means 'not given'."""
        raw = {}
        old_used: list[str] = []
        for name, default in DEFAULTS.items():
            value = options.get(name)
            if value is None or not value.strip():
                value = read_input(env, name, old_used)
            raw[name] = value.strip() if value and value.strip() else default

        for name in PATH_INPUTS:
            if _CONTROL.search(raw[name]):
                raise UserError(
                    "holds a line break or another control character",
                    subject=input_name(name),
                    fix="name a path without one",
                )
        ws_raw = options.get("workspace") or env.get("GITHUB_WORKSPACE") or os.getcwd()
        workspace = Path(ws_raw).resolve()
        if not workspace.is_dir():
            raise UserError(f"workspace {workspace} is not a folder; mount the repository there")
        wd = confine_to_workspace(raw["working_directory"], workspace, workspace, what=input_name("working_directory"))
        if not wd.is_dir():
            raise UserError(
                f"'{raw['working_directory']}' is not a folder in the workspace",
                subject=input_name("working_directory"),
            )

        def path(name: str, value: str | None = None) -> Path:
            return confine_to_workspace(raw[name] if value is None else value, wd, workspace, what=input_name(name))

        # a model may be named by its .onnx file; that file must stay inside the workspace too
        models = [str(path("models", m)) if m.endswith(".onnx") else m for m in parse_ids(raw["models"])]
        refuse_clobber(path("out_json"), input_name("out_json"), {"registry": path("registry")})
        reads = {"registry": path("registry"), f"{INPUT_NAMES['out_json']} file": path("out_json")}  # as the CLI does
        refuse_clobber(path("markdown_out"), input_name("markdown_out"), reads)
        return cls(
            workspace=workspace,
            working_directory=wd,
            registry=path("registry"),
            models=models,
            fail_on_violation=parse_bool(raw["fail_on_violation"], name="fail_on_violation", default=True),
            out_json=path("out_json"),
            markdown_out=path("markdown_out"),
            comment=parse_bool(raw["comment"], name="comment", default=True),
            github_token=context.check_token(raw["github_token"], input_name("github_token"))
            if raw["github_token"]
            else "",
            samples=None
            if raw["samples"].lower() == "auto"
            else parse_int(raw["samples"], name="samples", default=1, minimum=1),
            seed=parse_int(raw["seed"], name="seed", default=DEFAULT_SEED),
            bench=parse_bool(raw["bench"], name="bench", default=False),
            auto=parse_bool(raw["auto"], name="auto", default=False),
            plots=path("plots") if raw["plots"] else None,
            show_skipped=parse_bool(raw["show_skipped"], name="show_skipped", default=False),
            old_inputs=old_used,
            on_marginal=parse_choice(raw["on_marginal"], MARGINAL_POLICIES, name="on_marginal"),
        )


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


def report_error(message: str, env: Mapping[str, str], *, file: str | None = None) -> int:
    """A run that produced no results: one line, an annotation, outputs and summary say so."""
    say(f"quantgate: error: {plain(message)}", err=True)
    if in_actions(env):
        emit(actions.workflow_command("error", message, file=file, title="quantgate could not run"))
    _sinks(env, actions.outputs_from_results(None), actions.error_summary(message), None)
    return EXIT_ERROR


def _sinks(env: Mapping[str, str], outputs: dict, summary: str | None, full_copy: str | None) -> None:
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


def post_comment(results, s: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """Post the sticky comment of `results` on a pull request (`github.comment.post_results`,
    what `quantgate comment` calls); returns the comment outputs.

    Never changes the exit code: a comment that was not posted (a fork's read-only token, no
    network, an error of the comment's own) is a warning, and the verdict stands. When it could
    not be posted the body is left in `quantgate-comment.md` at the workspace root for the
    companion workflow.
    """
    from .github.comment import outcome_line, post_results

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


def _plots(results, s: Settings, env: Mapping[str, str]) -> str:
    """The pictures of every measured model into `s.plots`; a warning, never the verdict, when
    they cannot be drawn. Returns the folder relative to the workspace ('' when none was drawn)."""
    from .report.plots import gate_plots

    assert s.plots is not None
    try:
        drawn = gate_plots(results, s.registry, s.plots, seed=s.seed)
    except UserError as e:
        emit(actions.workflow_command("warning", f"no pictures: {e.render(input_name)}", title="quantgate plots"))
        return ""
    say(f"quantgate: {len(drawn)} picture(s) in {relative_to_workspace(s.plots, s.workspace)}")
    return relative_to_workspace(s.plots, s.workspace)


def run(options: Mapping[str, str | None], env: Mapping[str, str], *, argv: list[str] | None = None) -> int:
    """One action run; `options` are the caller's values by input name (None: not given)."""
    token = (options.get("github_token") or read_input(env, "github_token") or "").strip()
    # The token under either input name, even the one not used, is hidden in every log line of the
    # job. One mask per line: a mask is one line, so a token with a line break (refused below) would
    # leave its next lines in clear.
    old_token = (env.get(input_env_name("github_token")) or "").strip()
    for secret in dict.fromkeys(t for t in (token, old_token) if t):
        if in_actions(env):
            for part in sorted({p.strip() for p in re.split(r"[\r\n]+", secret)} - {""}):
                emit(f"::add-mask::{actions.escape_data(part)}")
    try:
        s = Settings.load(options, env)
    except UserError as e:
        return report_error(e.render(input_name), env)
    for old in s.old_inputs:
        say(f"quantgate: warning: input {old} is now {INPUT_NAMES[old]}; the old name still works", err=True)

    if s.plots is not None:  # before any work: a run never ends in an error after the gate
        from .report.plots import check

        try:
            check(s.plots)
        except UserError as e:
            return report_error(e.render(input_name), env)
    from .gate import run_gate
    from .report.markdown import render_markdown
    from .report.terminal import row_lines, summary_line

    registry_file = relative_to_workspace(s.registry, s.workspace)
    os.chdir(s.working_directory)  # relative paths mean what they mean to the CLI run there
    try:
        results = run_gate(
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
    except UserError as e:
        return report_error(e.render(input_name), env, file=registry_file if s.registry.is_file() else None)

    suggested: list[str] = []
    if s.auto and results.counts.failed:
        from .auto import suggest

        try:
            results, suggested = suggest(results, s.registry, root=s.working_directory, seed=s.seed)
        except UserError as e:  # a suggestion, never the verdict
            said = f"auto could not run: {e.render(input_name)}"
            emit(actions.workflow_command("warning", said, title="quantgate auto"))
    assert s.out_json is not None and s.markdown_out is not None
    markdown = render_markdown(results, show_skipped=s.show_skipped)
    if suggested:
        markdown += "\n**quantgate auto** (a dry run for each failing model; nothing was written)\n\n"
        markdown += "\n".join(suggested) + "\n"
    # Each results file on its own: one that cannot be written (a read-only mount, a path below a
    # file or inside .git, a name too long, a full disk) is one line, and everything else still
    # happens: the other file, the annotations, the job summary, the outputs, the comment.
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

    plots_path = ""
    if s.plots is not None:
        plots_path = _plots(results, s, env)
    if in_actions(env):
        for line in actions.annotation_lines(results, registry_file):
            emit(line)
    else:
        say(markdown)
    comment = post_comment(results, s, env)
    outputs = actions.outputs_from_results(
        results, results_path=paths.get("out_json", ""), markdown_path=paths.get("markdown_out", "")
    )
    _sinks(env, {**outputs, **comment, "plots_path": plots_path}, markdown, paths.get("markdown_out"))

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
