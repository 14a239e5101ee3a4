"""Options several commands share, with choices and defaults taken from the library."""

from __future__ import annotations

from pathlib import Path

import click

from ..registry import DEFAULT_REGISTRY
from .base import echo

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
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Repository root that registry paths must stay inside (default: the git checkout holding the registry).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No per-item lines; only the result.")


def split_list(values) -> tuple[str, ...]:
    """Repeated options that also accept comma-separated lists."""
    return tuple(v.strip() for item in values or () for v in item.split(",") if v.strip())


def record_options(f):
    """`--registry-id ID` (with `--registry`): record the new sidecar's digest in that entry."""
    f = click.option(
        "--registry",
        "registry",
        default=DEFAULT_REGISTRY,
        show_default=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The registry --registry-id names an entry of.",
    )(f)
    return click.option(
        "--registry-id",
        default=None,
        metavar="ID",
        help="Set this registry entry's int8_sha256 to the new sidecar's digest (editing only that value).",
    )(f)


def precheck(
    registry_id: str | None,
    registry: Path,
    model: Path,
    sidecar: Path,
    *,
    mode: str,
    fp32_written: bool = False,
    report_out: Path | None = None,
) -> None:
    """Before a producer writes anything: `--report-out` would not replace the registry, and the
    entry `--registry-id` names exists, ships `mode` and will be gated
    against `sidecar` (a mistake is one line, and no file is written)."""
    from ..paths import refuse_clobber

    refuse_clobber(report_out, "--report-out", {"registry": registry})
    if registry_id is None:
        return
    from ..registry_edit import check_target

    check_target(registry, registry_id, model, sidecar, fp32_written=fp32_written, mode=mode)


def record(
    registry_id: str | None, registry: Path, model: Path, sidecar: Path, *, mode: str, fp32_written: bool = False
) -> None:
    """After a producer: update the registry entry's digests when asked, and say so."""
    if registry_id is None:
        return
    from ..registry_edit import record_sidecar

    changed = record_sidecar(registry, registry_id, model, sidecar, fp32_written=fp32_written, mode=mode)
    for key, value in changed.items():
        echo(f"{registry}: set {registry_id}.{key} = {value}")
