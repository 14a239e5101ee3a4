"""`quantgate validate` and `quantgate gate`: the registry and the accuracy gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_ERROR, EXIT_PASS
from ..gate.settings import DEFAULT_SEED, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES
from ..text import plain
from .base import Command, echo, echo_styled, styled, verbosity
from .options import registry_option, root_option


def complete_ids(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list:
    """Shell completion of MODELS: the ids of the registry (--registry, else the default) and
    .onnx files."""
    from click.shell_completion import CompletionItem

    from ..registry import DEFAULT_REGISTRY, load_registry

    try:
        reg = load_registry(ctx.params.get("registry") or DEFAULT_REGISTRY)
        ids = [e.id for e in reg.entries if e.id.startswith(incomplete)]
    except Exception:  # completion must never print an error into the user's shell
        ids = []
    return [CompletionItem(i) for i in ids] + [CompletionItem(incomplete, type="file")]


TAG_COLOUR = {"pass": "green", "fail": "red", "error": "yellow", "skipped": "bright_black"}


@click.command(cls=Command)
@registry_option
@root_option
@click.option(
    "--quick",
    is_flag=True,
    help="Check the schema and that the named files exist; skip opening the models "
    "(digests, graphs, input and output names, the eval set).",
)
def validate(registry: Path, root: Path | None, quick: bool) -> int:
    """Check a registry against the schema, the files it names and the models themselves;
    list every problem at its field's line."""
    from ..registry import check_files, load_registry

    reg = load_registry(registry, root)
    problems = reg.problems + check_files(reg)
    warnings = [
        f"{w.file}{f':{w.line}' if w.line else ''}: {w.where}: warning: {w.message}"
        for e in reg.entries
        for w in e.warnings
    ]
    if not quick:
        from ..gate.run import check_entry

        known = {p.where.split(".", 1)[0] for p in problems}
        for e in reg.entries:
            if f"models[{e.index}]" in known:
                continue  # its schema or file problem is the one to fix first
            found, warned = check_entry(e, reg.path, reg.root)
            problems += found
            typos = tuple(t.message for t in e.warnings)  # said above, at their line
            warnings += [f"{registry}: {e.id}: warning: {w}" for w in warned if not w.endswith(typos)]
    for p in sorted(problems, key=lambda p: p.line or 0):
        echo(str(p), err=True)
    for w in warnings if verbosity() >= 1 else ():  # -q: only the result and the errors
        echo_styled(styled(plain(w), fg="yellow"), err=True)
    if problems:
        echo(f"quantgate: {registry}: {len(problems)} problem(s)", err=True)
        return EXIT_ERROR
    gated = sum(e.mode != "fp32" for e in reg.entries)
    how = "schema and files" if quick else "schema, files and models"
    echo(f"{registry}: ok ({how}) — {len(reg.entries)} model(s), {gated} with an int8 sidecar", level=0)
    return EXIT_PASS


@click.command(cls=Command)
@click.argument("models", nargs=-1, shell_complete=complete_ids)
@click.option("--all", "all_", is_flag=True, help="Gate every entry (the default when none is named).")
@registry_option
@root_option
@click.option(
    "--out-json",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the results document (schema: quantgate/schemas/results.schema.json); - for standard output.",
)
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the results as a markdown table; - for standard output.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help=f"Measure every model at exactly N samples. Default: adaptive, from {MIN_SAMPLES} samples "
    "doubling until each budget is decided and the drop known to 5 %, at most --max-samples.",
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=1),
    default=MAX_SAMPLES,
    show_default=True,
    help="Adaptive sampling stops here.",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=MAX_SECONDS,
    show_default=True,
    help="Adaptive sampling stops after this much run time per model "
    "(recorded: the only stop that depends on the machine's speed).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=DEFAULT_SEED,
    show_default=True,
    help="Seed of the input draws (and of the bootstrap).",
)
@click.option(
    "--avx2-check",
    is_flag=True,
    help="Also measure each model as an AVX2-only x86 CPU computes it, under "
    "qemu-x86_64 -cpu Haswell (needs qemu-user; about 10x slower).",
)
@click.option(
    "--bench",
    is_flag=True,
    help="Also time fp32 against int8 on this machine (1 thread and the default thread count, batch 1 "
    "and 16 where the model takes a batch) and warn where int8 is slower; never changes a verdict.",
)
@click.option(
    "--budget", type=float, default=None, help="Budget for a MODEL.onnx that no registry lists (default 0.01)."
)
@click.option(
    "--reference-compat",
    is_flag=True,
    help="Feed only the first input and judge only the first output, as the first user's reference gate did.",
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a scatter of int8 against fp32 outputs and an error histogram per model into this folder "
    "(needs matplotlib: pip install 'quantgate[plots]').",
)
def gate(
    models,
    all_,
    registry,
    root,
    out_json,
    markdown,
    samples,
    max_samples,
    max_seconds,
    seed,
    avx2_check,
    bench,
    budget,
    reference_compat,
    plots,
) -> int:
    """Run fp32 and int8 side by side and judge each model's drop against its budget.

    MODELS are registry ids or .onnx paths; none (or --all) means every entry.
    """
    from ..gate.run import detail_lines, row_lines, run_gate, summary_line
    from ..paths import STDOUT, refuse_clobber, write_json, write_text
    from ..report.markdown import render_markdown

    if all_ and models:
        raise click.UsageError("--all and named models exclude each other")
    if str(out_json) == STDOUT and str(markdown) == STDOUT:
        raise click.UsageError("--out-json - and --markdown - would both write to standard output; pick one")
    if plots is not None:
        from ..report.plots import check

        check(plots)
    refuse_clobber(out_json, "--out-json", {"registry": registry})
    refuse_clobber(markdown, "--markdown", {"registry": registry, "--out-json file": out_json})
    # with a document on standard output, the lines for the reader go to standard error
    to_stderr = STDOUT in (str(out_json), str(markdown))

    def progress(row, i: int, n: int) -> None:
        if verbosity() < 1:
            return
        first, *more = row_lines(row)
        tag, rest = first[:7], first[7:]
        counter = f" [{i}/{n}]" if n > 1 else ""
        echo_styled(styled(tag, fg=TAG_COLOUR.get(row.status), bold=True) + rest + counter, err=to_stderr)
        for line in more:  # the emulated figures, then the warnings (in yellow)
            echo_styled(styled(line, fg="yellow") if line.lstrip().startswith("warning:") else line, err=to_stderr)
        for line in detail_lines(row) if verbosity() >= 2 else ():
            echo(line, err=to_stderr, level=2)

    results = run_gate(
        registry,
        list(models),
        root=root,
        samples=samples,
        seed=seed,
        max_samples=max_samples,
        max_seconds=max_seconds,
        avx2_check=avx2_check,
        bench=bench,
        reference_compat=reference_compat,
        budget=budget,
        argv=sys.argv,
        progress=progress,
    )
    if out_json:
        write_json(out_json, results)
    if markdown:
        write_text(markdown, render_markdown(results))
    if plots is not None:
        from ..report.plots import gate_plots

        for p in gate_plots(results, registry, plots, seed=seed):
            echo(f"wrote {p}", err=to_stderr)
    echo(summary_line(results), err=to_stderr, level=0)
    return results.exit_code
