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
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="The model registry JSON; - reads it from standard input (its paths then relative to the current folder).",
)
root_option = click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Repository root that registry paths must stay inside (default: the git checkout holding the registry).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No per-item lines; only the result.")


def option_group(*decorators):
    """One decorator for a set of options (and arguments) that belong together; they appear in
    `--help` in the order given, as if written one above the other."""

    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


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
    f = click.option(
        "--set-mode",
        is_flag=True,
        help="With --registry-id: also set the entry's quant_mode to this producer's mode (an fp32 entry "
        "becomes an int8 one; ptq-static also records its --calibration set).",
    )(f)
    return click.option(
        "--registry-id",
        default=None,
        metavar="ID",
        help="Set this registry entry's int8_sha256 to the new sidecar's digest (editing only that value).",
    )(f)


exclude_option = click.option(
    "--exclude-node",
    "exclude_node",
    multiple=True,
    metavar="NAME",
    help="Keep this node in float (repeat, or comma-separate; an unnamed node by its first output). "
    "With --registry-id the entry's quant_nodes_to_exclude is used.",
)


def exclusions(registry_id: str | None, registry: Path, given) -> tuple[str, ...]:
    """The nodes a producer keeps in float: those of the registry entry `--registry-id` names
    (its quant_nodes_to_exclude), else `--exclude-node`. Both, when they differ, is one line."""
    from ..errors import UserError

    names = tuple(sorted(set(split_list(given))))
    if registry_id is None:
        return names
    from ..registry import load_registry

    e = load_registry(registry).get(registry_id)
    if names and names != e.nodes_to_exclude:
        raise UserError(
            f"--exclude-node {','.join(names)} differs from entry '{registry_id}''s quant_nodes_to_exclude "
            f"({', '.join(e.nodes_to_exclude) or 'none'})",
            subject=str(registry),
            field=f"models[{e.index}].quant_nodes_to_exclude",
            fix="set quant_nodes_to_exclude in the registry (the gate checks the sidecar against it), "
            "or leave out --exclude-node",
        )
    return e.nodes_to_exclude


def input_spec_of(registry_id: str | None, registry: Path) -> dict | None:
    """The quant_inputs of the entry `--registry-id` names (the producer's one-sample check draws
    from it), else None."""
    if registry_id is None:
        return None
    from ..registry import load_registry

    return load_registry(registry).get(registry_id).input_spec or None


def precheck(
    registry_id: str | None,
    registry: Path,
    model: Path,
    sidecar: Path,
    *,
    mode: str,
    fp32_written: bool = False,
    report_out: Path | None = None,
    set_mode: bool = False,
    calibration: Path | None = None,
) -> None:
    """Before a producer writes anything: `--report-out` can be written and would not replace the
    registry, the sidecar can be written, and the entry `--registry-id` names exists, ships `mode`
    (or `--set-mode` makes it so) and will be gated against `sidecar` (a mistake is one line, and
    no file is written)."""
    from ..paths import check_writable, refuse_clobber

    refuse_clobber(report_out, "--report-out", {"registry": registry})
    check_writable(report_out, f"--report-out {report_out}")
    check_writable(sidecar)
    if registry_id is None:
        if set_mode:
            raise click.UsageError("--set-mode edits the entry --registry-id names; give --registry-id ID")
        return
    from ..registry_edit import check_target

    check_target(
        registry,
        registry_id,
        model,
        sidecar,
        fp32_written=fp32_written,
        mode=mode,
        set_mode=set_mode,
        calibration=calibration,
    )
    check_writable(registry, f"--registry {registry}")  # the digest is recorded last: it must be writable


def record(
    registry_id: str | None,
    registry: Path,
    model: Path,
    sidecar: Path,
    *,
    mode: str,
    fp32_written: bool = False,
    set_mode: bool = False,
    calibration: Path | None = None,
) -> list[str]:
    """After a producer: update the registry entry's digests (and with `--set-mode` its mode) when
    asked; the lines that say so (printed by the caller once every file is in place)."""
    if registry_id is None:
        return []
    from ..registry_edit import record_sidecar

    def waiting() -> None:
        echo(f"{registry}: another quantgate run is editing it; waiting", err=True)

    changed = record_sidecar(
        registry,
        registry_id,
        model,
        sidecar,
        fp32_written=fp32_written,
        mode=mode,
        set_mode=set_mode,
        calibration=calibration,
        waiting=waiting,
    )
    return [f"{registry}: set {registry_id}.{key} = {value}" for key, value in changed.items()]
