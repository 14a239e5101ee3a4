#!/usr/bin/env python3
"""The quantgate action's container entrypoint: the runner's environment in, quantgate calls out.

Settings come from command-line options, else from the runner's `INPUT_<NAME>` variables, else
from the defaults action.yml declares, so a plain `docker run` needs no runner. It runs the
same gate the CLI runs, then feeds the sinks in `quantgate.report.actions`: the results JSON
and markdown in the workspace, the job summary, the step outputs, one annotation per failing
model, and (on a pull request) `quantgate comment`. The exit code is the gate's, except that
violations alone exit 0 when fail_on_violation is false.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from quantgate.errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, UserError
from quantgate.paths import atomic_write_text
from quantgate.registry import DEFAULT_REGISTRY
from quantgate.report import actions

DEFAULTS = {
    "registry": DEFAULT_REGISTRY,
    "models": "",
    "fail_on_violation": "true",
    "out_json": "quantgate-results.json",
    "markdown_out": "quantgate-results.md",
    "comment": "true",
    "github_token": "",
    "samples": "16",
    "seed": "0",
    "working_directory": ".",
}
COMMENT_TIMEOUT_S = 180


@dataclass
class Settings:
    workspace: Path
    working_directory: Path
    registry: Path
    models: list[str] = field(default_factory=list)
    fail_on_violation: bool = True
    out_json: Path | None = None
    markdown_out: Path | None = None
    comment: bool = True
    github_token: str = ""
    samples: int = 16
    seed: int = 0

    @classmethod
    def load(cls, options: dict[str, str | None], env) -> "Settings":
        """Options win over `INPUT_*`, which win over the defaults; '' means 'not given'."""
        raw = {}
        for name, default in DEFAULTS.items():
            value = options.get(name)
            if value is None or not value.strip():
                value = actions.read_input(env, name)
            raw[name] = value.strip() if value and value.strip() else default

        ws_raw = options.get("workspace") or env.get("GITHUB_WORKSPACE") or os.getcwd()
        workspace = Path(ws_raw).resolve()
        if not workspace.is_dir():
            raise UserError(f"workspace {workspace} is not a folder; mount the repository there")
        wd = actions.confine_to_workspace(raw["working_directory"], workspace, workspace,
                                          what="input working_directory")
        if not wd.is_dir():
            raise UserError(f"input working_directory: '{raw['working_directory']}' is not a folder "
                            "in the workspace")

        def path(name: str, value: str | None = None) -> Path:
            return actions.confine_to_workspace(raw[name] if value is None else value, wd, workspace,
                                                what=f"input {name}")

        # a model may be named by its .onnx file; that file must stay inside the workspace too
        models = [str(path("models", m)) if m.endswith(".onnx") else m
                  for m in actions.parse_ids(raw["models"])]
        return cls(
            workspace=workspace,
            working_directory=wd,
            registry=path("registry"),
            models=models,
            fail_on_violation=actions.parse_bool(raw["fail_on_violation"], name="fail_on_violation",
                                                 default=True),
            out_json=path("out_json"),
            markdown_out=path("markdown_out"),
            comment=actions.parse_bool(raw["comment"], name="comment", default=True),
            github_token=raw["github_token"],
            samples=actions.parse_int(raw["samples"], name="samples", default=16, minimum=1),
            seed=actions.parse_int(raw["seed"], name="seed", default=0),
        )


def parse_args(argv: list[str] | None) -> dict[str, str | None]:
    p = argparse.ArgumentParser(
        prog="quantgate-action",
        description="Run the quantgate accuracy gate the way the GitHub Action does. Every option "
                    "can also come from the runner's INPUT_<NAME> variable (e.g. INPUT_REGISTRY).")
    p.add_argument("--workspace", help="The repository folder (default: $GITHUB_WORKSPACE, else the "
                                       "current folder). Every path must stay inside it.")
    for name, default in DEFAULTS.items():
        flag = "--" + name.replace("_", "-")
        shown = "the workflow's token" if name == "github_token" else (default or "none")
        p.add_argument(flag, dest=name, default=None, help=f"(default: {shown})")
    ns = p.parse_args(argv)
    return vars(ns)


def in_actions(env) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def emit(line: str) -> None:
    print(line, flush=True)


def report_error(message: str, env, *, file: str | None = None) -> int:
    """A run that produced no results: one line, an annotation, outputs and summary say so."""
    print(f"quantgate: error: {message}", file=sys.stderr, flush=True)
    if in_actions(env):
        emit(actions.workflow_command("error", message, file=file, title="quantgate could not run"))
    _sinks(env, actions.outputs_from_results(None), actions.error_summary(message), None)
    return EXIT_ERROR


def _sinks(env, outputs: dict, summary: str | None, full_copy: str | None) -> None:
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
                emit(actions.workflow_command(
                    "warning", "the results table was too long for the job summary and was cut; "
                               f"the full table is in {full_copy}"))
        except OSError as e:
            emit(actions.workflow_command("warning", f"could not write the job summary to {summary_file}: {e}"))


def comment_command() -> list[str] | None:
    """`quantgate comment` from the same environment as this interpreter, else from PATH."""
    exe = Path(sys.executable).with_name("quantgate")
    found = str(exe) if exe.is_file() else shutil.which("quantgate")
    return [found, "comment"] if found else None


def post_comment(results_file: Path, s: Settings, env) -> dict[str, str]:
    """Run `quantgate comment` on a pull request; returns the comment outputs.

    Never changes the exit code: a comment that was not posted (a fork's read-only token, no
    network, the command missing or failing) is a warning. When it could not be posted the body
    is left in `quantgate-comment.md` at the workspace root for the companion workflow.
    """
    none = {"comment": "", "comment_url": ""}
    event_name = env.get("GITHUB_EVENT_NAME")
    if not s.comment:
        return none
    if actions.pull_request_number(event_name, actions.read_json_object(env.get("GITHUB_EVENT_PATH"))) is None:
        print(f"quantgate: no pull request in this run ({event_name or 'no event'}); no comment",
              flush=True)
        return none
    cmd = comment_command()
    if not cmd:
        emit(actions.workflow_command("warning", "the quantgate command is not installed; no comment posted",
                                      title="quantgate comment"))
        return {**none, "comment": "failed"}
    child_env = dict(env)
    if s.github_token:
        child_env["GITHUB_TOKEN"] = child_env["INPUT_GITHUB_TOKEN"] = s.github_token
    with tempfile.TemporaryDirectory(prefix="quantgate-comment-") as tmp:
        outcome_file = Path(tmp) / "outcome.json"
        try:
            proc = subprocess.run([*cmd, "--results", str(results_file), "--outcome-json", str(outcome_file),
                                   "--body-out", str(s.workspace / "quantgate-comment.md")],
                                  env=child_env, cwd=s.working_directory, capture_output=True, text=True,
                                  timeout=COMMENT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            emit(actions.workflow_command("warning", f"quantgate comment did not run: {e}; the verdict stands",
                                          title="quantgate comment"))
            return {**none, "comment": "failed"}
        outcome = actions.read_json_object(str(outcome_file))
    if proc.stdout.strip():
        print(proc.stdout.rstrip(), flush=True)
    if proc.stderr.strip():
        print(proc.stderr.rstrip(), file=sys.stderr, flush=True)
    if proc.returncode != 0 or not outcome.get("posted"):
        why = outcome.get("message") or (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        emit(actions.workflow_command(
            "warning", f"the pull-request comment was not posted: {why}; the verdict stands",
            title="quantgate comment"))
    return {"comment": str(outcome.get("action") or "failed"), "comment_url": str(outcome.get("url") or "")}


def run(argv: list[str] | None = None, env=None) -> int:
    env = os.environ if env is None else env
    options = parse_args(argv)
    try:
        s = Settings.load(options, env)
    except UserError as e:
        return report_error(str(e), env)

    from quantgate.gate import line_for, run_gate, write_results

    registry_file = actions.relative_to_workspace(s.registry, s.workspace)
    os.chdir(s.working_directory)  # relative paths mean what they mean to the CLI run there
    try:
        results = run_gate(s.registry, s.models, root=s.working_directory, samples=s.samples,
                           seed=s.seed, argv=["quantgate-action", *(argv if argv is not None else sys.argv[1:])],
                           progress=lambda row: print(line_for(row), flush=True))
    except UserError as e:
        return report_error(str(e), env, file=registry_file if s.registry.is_file() else None)

    results_path = actions.relative_to_workspace(s.out_json, s.workspace)
    markdown_path = actions.relative_to_workspace(s.markdown_out, s.workspace)
    try:
        markdown = render(results)
        write_results(results, s.out_json)
        atomic_write_text(s.markdown_out, markdown)
    except OSError as e:
        return report_error(f"could not write the results: {e}", env)

    if in_actions(env):
        for line in actions.annotations(results, registry_file):
            emit(line)
    else:
        print(markdown, flush=True)
    comment = post_comment(s.out_json, s, env)
    _sinks(env, {**actions.outputs_from_results(results, results_path=results_path,
                                                markdown_path=markdown_path), **comment},
           markdown, markdown_path)

    c, worst = results["counts"], results.get("worst_drop")
    print(f"quantgate: {results['verdict'].upper()} — {c['pass']} passed, {c['fail']} failed, "
          f"{c['error']} errored, {c['skipped']} skipped"
          + (f"; worst drop {worst:.6f}" if worst is not None else "")
          + f"; results in {results_path}", flush=True)
    code = results["exit_code"]
    if code == EXIT_FAIL and not s.fail_on_violation:
        print("quantgate: fail_on_violation is false: the step passes despite the violations",
              flush=True)
        return EXIT_PASS
    return code


def render(results: dict) -> str:
    from quantgate.report.markdown import render_markdown
    return render_markdown(results)


def main() -> None:
    try:
        code = run()
    except Exception as e:  # a bug: show it, but exit 2 ("could not judge"), never 1 ("over budget")
        traceback.print_exc()
        message = f"quantgate crashed ({type(e).__name__}: {e}); please report it with the log above"
        code = report_error(message, os.environ)
    sys.exit(code)


if __name__ == "__main__":
    main()
