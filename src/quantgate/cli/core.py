"""`quantgate validate` and `quantgate gate`: the registry and the accuracy gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_ERROR, EXIT_PASS
from ..gate import DEFAULT_SAMPLES, DEFAULT_SEED
from .base import Command
from .options import registry_option, root_option


@click.command(cls=Command)
@registry_option
@root_option
def validate(registry: Path, root: Path | None) -> int:
    """Check a registry against the schema and the files it names; list every problem."""
    from ..registry import check_files, load_registry

    reg = load_registry(registry, root)
    problems = reg.problems + check_files(reg)
    for p in problems:
        click.echo(str(p), err=True)
    if problems:
        click.echo(f"quantgate: {registry}: {len(problems)} problem(s)", err=True)
        return EXIT_ERROR
    gated = sum(e.mode != "fp32" for e in reg.entries)
    click.echo(f"{registry}: ok — {len(reg.entries)} model(s), {gated} with an int8 sidecar")
    return EXIT_PASS


@click.command(cls=Command)
@click.argument("models", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Gate every entry (the default when none is named).")
@registry_option
@root_option
@click.option("--out-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results document (schema: quantgate/schemas/results.schema.json).")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results as a markdown table.")
@click.option("--samples", type=int, default=DEFAULT_SAMPLES, show_default=True, help="Samples per model.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the input draws.")
@click.option("--budget", type=float, default=None,
              help="Budget for a MODEL.onnx that no registry lists (default 0.01).")
@click.option("--reference-compat", is_flag=True,
              help="Feed only the first input and judge only the first output, as the first "
                   "user's reference gate did.")
@click.option("--quiet", "-q", is_flag=True, help="No per-model lines; only the summary.")
def gate(models, all_, registry, root, out_json, markdown, samples, seed, budget, reference_compat,
         quiet) -> int:
    """Run fp32 and int8 side by side and judge each model's drop against its budget.

    MODELS are registry ids or .onnx paths; none (or --all) means every entry.
    """
    from ..gate import line_for, run_gate, summary_line
    from ..paths import atomic_write_text, write_json
    from ..report.markdown import render_markdown

    if all_ and models:
        raise click.UsageError("--all and named models exclude each other")

    def progress(row):
        if not quiet:
            click.echo(line_for(row))

    results = run_gate(registry, list(models), root=root, samples=samples, seed=seed,
                       reference_compat=reference_compat, budget=budget, argv=sys.argv, progress=progress)
    if out_json:
        write_json(out_json, results)
    if markdown:
        atomic_write_text(markdown, render_markdown(results))
    click.echo(summary_line(results))
    return results.exit_code
