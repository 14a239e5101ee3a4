"""`quantgate action`: the container's entry, the GitHub Action run from the runner's environment."""

from __future__ import annotations

import os
import sys

import click

from ..action import DEFAULTS
from .base import Command, verbosity


def _action_options(f):
    for name in reversed(list(DEFAULTS)):
        shown = "the workflow's token" if name == "github_token" else (DEFAULTS[name] or "none")
        f = click.option(
            "--" + name.replace("_", "-"),
            name,
            default=None,
            metavar="VALUE",
            help=f"(default: INPUT_{name.upper()}, else {shown})",
        )(f)
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

    Every option can also come from the runner's INPUT_<NAME> variable (e.g. INPUT_REGISTRY).
    """
    from ..action import main

    return main(options, os.environ, argv=sys.argv, verbosity=verbosity())
