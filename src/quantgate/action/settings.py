"""The action's settings: the caller's options, else the runner's `INPUT_<NAME>` variables, else
the defaults action.yml declares, typed and checked (`Settings.load`), every path confined to the
workspace. Nothing here runs a model or writes a file."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..gate.settings import DEFAULT_ON_MARGINAL, DEFAULT_SEED, MARGINAL_POLICIES
from ..github import context
from ..paths import confine, refuse_clobber
from ..registry import DEFAULT_REGISTRY

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
            raise UserError("is not a folder", subject=f"workspace {workspace}", fix="mount the repository there")
        wd = confine_to_workspace(raw["working_directory"], workspace, workspace, what=input_name("working_directory"))
        if not wd.is_dir():
            raise UserError(
                f"'{raw['working_directory']}' is not a folder in the workspace",
                subject=input_name("working_directory"),
                fix="name a folder of the checked-out repository, relative to its root",
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
