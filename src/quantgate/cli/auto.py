"""`quantgate auto` (find the int8 sidecar that meets the budget) and `quantgate explain` (which
nodes add the error)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..auto.search import DEFAULT_MINUTES, MAX_FLOAT_NODES, PREFERENCES
from ..diagnose import PROBE_SAMPLES
from ..errors import EXIT_ERROR, EXIT_PASS
from ..gate.settings import DEFAULT_SEED
from ..text import plain
from .base import Command, echo, echo_styled, renamed, styled, verbosity
from .core import complete_ids
from .options import registry_option, root_option

plots_option = click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write PNG pictures into this folder (needs matplotlib: pip install 'quantgate[plots]').",
)


@click.command(cls=Command)
@click.argument("models", nargs=-1, shell_complete=complete_ids)
@registry_option
@root_option
@click.option(
    "--prefer",
    type=click.Choice(list(PREFERENCES)),
    default="cost",
    show_default=True,
    help="Among the candidates that meet every budget: cost (the first in the order dynamic, static, "
    "static with nodes in float, QAT), size (smallest file), speed (fastest int8/fp32 time on this CPU; "
    "may answer keep fp32), accuracy (smallest drop).",
)
@click.option("--dry-run", is_flag=True, help="Write nothing: print the candidates and the registry patch.")
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True, max=24 * 60),
    default=DEFAULT_MINUTES,
    show_default=True,
    help="Time budget per model; the search stops at the first candidate boundary past it.",
)
@click.option(
    "--max-float-nodes",
    type=click.IntRange(min=0, max=64),
    default=MAX_FLOAT_NODES,
    show_default=True,
    help="At most this many nodes kept in float by the search.",
)
@click.option("--no-qat", is_flag=True, help="Never train (skip QAT even where the entry names a QAT config).")
@click.option(
    "--seed", type=click.IntRange(min=0), default=DEFAULT_SEED, show_default=True, help="Seed of the gate's draws."
)
@click.option(
    "--report-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table and the exact registry patch as JSON (with --dry-run too).",
)
@plots_option
def auto(models, registry, root, prefer, dry_run, max_minutes, max_float_nodes, no_qat, seed, report_out, plots) -> int:
    """Find the int8 sidecar each model should ship and write it, editing the registry row.

    Tries the sidecar it ships now, dynamic PTQ, static PTQ, those with the nodes that add the most
    error kept in float, then QAT where the entry names a QAT config (quant_qat_config); judges each
    with the gate's own measurement and keeps the cheapest that meets every budget (see --prefer).
    A candidate that stores under half of its weights in int8 is never chosen. MODELS are registry
    ids or .onnx paths; none means every entry. --dry-run writes no model, set or registry (the
    report and pictures you ask for are still written). Exit 0: every model has an answer within
    budget; 1: one has none; 2: a model could not be searched, or a mistake.

    \b
    Examples:
      quantgate auto nr_metric_v1 --dry-run
      quantgate auto conv_filter_v1 --prefer size --report-out auto.json
    """
    from ..auto import run_auto
    from ..auto.report import lines

    if plots is not None:
        from ..report.plots import check

        check(plots)

    def show(o) -> None:
        for i, line in enumerate(lines(o)):
            if i == 0 and not o.error:
                if verbosity() >= 1:
                    echo_styled(styled(line, bold=True))
            elif line.lstrip().startswith("→") or o.error:
                colour = "red" if o.error or not o.found else "green"
                echo_styled(styled(line if verbosity() >= 1 else f"{o.entry.id}: {line.strip()}", fg=colour))
            else:
                echo(line)

    report = run_auto(
        registry,
        list(models),
        root=root,
        prefer=prefer,
        max_minutes=max_minutes,
        max_float_nodes=max_float_nodes,
        dry_run=dry_run,
        seed=seed,
        qat=not no_qat,
        report_out=report_out,
        argv=sys.argv,
        log=lambda msg: echo(f"  … {plain(msg)}", err=True, level=2),
        on_outcome=show,
    )
    if plots is not None:
        from ..report.plots import auto_plots

        for p in auto_plots(report, plots):
            echo(f"wrote {p}")
    if report.diff:
        echo("registry patch (not applied: --dry-run):" if dry_run else "registry patch (applied):")
        echo(report.diff.rstrip("\n"))
    else:
        echo("registry: no change")
    for o in report.outcomes:
        if o.keep_fp32 and not o.found and o.entry.index >= 0 and o.entry.mode != "fp32":
            echo(
                f"{o.entry.id}: registry unchanged: the entry still ships {o.entry.mode} and fails; "
                'set "quant_mode": "fp32" to ship fp32, or give it a QAT config (quant_qat_config)',
                level=0,
            )
    for p in report.written:
        echo(f"wrote {p}")
    return EXIT_PASS if report.exit_code == 0 else report.exit_code


@click.command(cls=Command)
@click.argument("model", shell_complete=complete_ids)
@registry_option
@root_option
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="List this many nodes.")
@click.option(
    "--mode",
    type=click.Choice(["dynamic", "static"]),
    default=None,
    help="Re-make the sidecar in this mode (default: the entry's; static for fp32 and QAT entries).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=16, max=100_000),
    default=PROBE_SAMPLES,
    show_default=True,
    help="Samples every variant is scored on (the same ones for each).",
)
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_SEED, show_default=True, help="Seed of the draws.")
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Stop re-making nodes in float after this long (the nodes left get the cheap figure only).",
)
@click.option(
    "--json-out",
    "out_json",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the figures as JSON.",
)
@renamed("--out-json", "out_json", type=click.Path(dir_okay=False, path_type=Path))
@plots_option
def explain(model, registry, root, top, mode, samples, seed, max_seconds, out_json, plots) -> int:
    """Which quantised nodes add the error: each weight node's error at its output, and the drop
    with it kept in float (its sidecar re-made without it, scored on the same samples).

    MODEL is a registry id or an .onnx path.

    \b
    Examples:
      quantgate explain nr_metric_v1
      quantgate explain model.onnx --mode dynamic --top 5
    """
    from ..explain import explain_entry, lines

    if plots is not None:
        from ..report.plots import check

        check(plots)
    ex = explain_entry(
        model, registry, root=root, top=top, mode=mode, samples=samples, seed=seed, max_seconds=max_seconds
    )
    for line in lines(ex):
        echo(line, level=0)
    if out_json is not None:
        from ..paths import write_json

        write_json(out_json, ex)
        echo(f"wrote {out_json}")
    if plots is not None:
        from ..report.plots import explain_plots

        for p in explain_plots(ex, plots):
            echo(f"wrote {p}")
    return EXIT_PASS if ex.nodes else EXIT_ERROR
