"""`quantgate action`: the container's entry, the GitHub Action run from the runner's environment."""

from __future__ import annotations

import os
import sys

import click

from ..action.settings import DEFAULTS, INPUT_NAMES, input_env_name
from .base import Command, renamed, verbosity


def _action_options(f):
    for name in reversed(list(DEFAULTS)):
        shown = "the workflow's token" if name == "github_token" else (DEFAULTS[name] or "none")
        flag = INPUT_NAMES[name]
        f = click.option(
            "--" + flag,
            name,
            default=None,
            metavar="VALUE",
            help=f"(default: {input_env_name(flag)}, else {shown})",
        )(f)
        old = "--" + name.replace("_", "-")
        if old != "--" + flag:  # quantgate 0.1's name of the same input
            f = renamed(old, name, metavar="VALUE")(f)
    return click.option(
        "--workspace",
        default=None,
        metavar="DIR",
        help="The repository folder (default: $GITHUB_WORKSPACE, else the current "
        "folder). Every path must stay inside it.",
    )(f)


@click.command(cls=Command, context_settings={"show_default": False})
@_action_options
def action(**options) -> int:
    """Run the gate as the GitHub Action does: results JSON and markdown, job summary, step
    outputs, annotations and (on a pull request) the comment.

    Every option can also come from the runner's INPUT_<NAME> variable (e.g. INPUT_REGISTRY,
    INPUT_JSON-OUT; quantgate 0.1's snake_case names such as INPUT_OUT_JSON are still read).
    """
    from ..action import main

    return main(options, os.environ, argv=sys.argv, verbosity=verbosity())
