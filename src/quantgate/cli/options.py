"""Options several commands share, with choices and defaults taken from the library."""

from __future__ import annotations

from pathlib import Path

import click

from ..registry import DEFAULT_REGISTRY

registry_option = click.option(
    "--registry",
    "registry",
    default=DEFAULT_REGISTRY,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The model registry JSON.",
)
root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Repository root that registry paths must stay inside (default: the git checkout holding the registry).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No per-item lines; only the result.")


def split_list(values) -> tuple[str, ...]:
    """Repeated options that also accept comma-separated lists."""
    return tuple(v.strip() for item in values or () for v in item.split(",") if v.strip())
