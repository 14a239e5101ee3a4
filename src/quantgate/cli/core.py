"""`quantgate validate` and `quantgate gate`: the registry and the accuracy gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_ERROR, EXIT_PASS
from ..gate.settings import DEFAULT_SEED, MARGINAL_POLICIES, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, MODEL_TIMEOUT
from ..text import plain
from .base import Command, Status, echo, echo_styled, renamed, styled, verbosity
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
    list every problem at its field's line. -v also lists every entry checked.

    \b
    Examples:
      quantgate validate                                  # the registry [tool.quantgate] or the default names
      quantgate validate --registry models/registry.json --quick
      cat registry.json | quantgate validate --registry -
    """
    from ..registry import load_registry, shown_name
    from ..registry_checks import check_files

    reg = load_registry(registry, root)
    name = shown_name(registry)
    problems = reg.problems + check_files(reg)
    warnings = [
        f"{w.file}{f':{w.line}' if w.line else ''}: {w.where}: warning: {w.message}"
        for e in reg.entries
        for w in e.warnings
    ]
    if not quick:
        from ..gate.entry import check_entry

        known = {p.where.split(".", 1)[0] for p in problems}
        for e in reg.entries:
            if f"models[{e.index}]" in known:
                continue  # its schema or file problem is the one to fix first
            found, warned = check_entry(e, reg.path, reg.root)
            problems += found
            typos = tuple(t.message for t in e.warnings)  # said above, at their line
            at = f"{name}:{e.line}" if e.line else name
            warnings += [f"{at}: {e.id}: warning: {w}" for w in warned if not w.endswith(typos)]
    for p in sorted(problems, key=lambda p: p.line or 0):
        echo(str(p), err=True, level=0)  # errors print whatever the verbosity
    for w in warnings if verbosity() >= 1 else ():  # -q: only the result and the errors
        echo_styled(styled(plain(w), fg="yellow"), err=True)
    bad = {p.where.split(".", 1)[0] for p in problems}
    for e in reg.entries if verbosity() >= 2 else ():
        state = "problem" if f"models[{e.index}]" in bad else "ok"
        echo(f"  {name}:{e.line or '?'}: {e.id} ({e.mode}): {state}", level=2)
    if problems:
        echo(f"quantgate: {name}: {len(problems)} problem(s)", err=True, level=0)
        return EXIT_ERROR
    gated = sum(e.mode != "fp32" for e in reg.entries)
    how = "schema and files" if quick else "schema, files and models"
    echo(f"{name}: ok ({how}) — {len(reg.entries)} model(s), {gated} with an int8 sidecar", level=0)
    return EXIT_PASS


@click.command(cls=Command)
@click.argument("models", nargs=-1, shell_complete=complete_ids)
@click.option("--all", "all_", is_flag=True, help="Gate every entry (the default when none is named).")
@registry_option
@root_option
@click.option(
    "--json-out",
    "out_json",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the results document (schema: quantgate/schemas/results.schema.json); - for standard output.",
)
@renamed("--out-json", "out_json", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--markdown-out",
    "markdown",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the results as a markdown table; - for standard output.",
)
@renamed("--markdown", "markdown", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--show-skipped",
    is_flag=True,
    help="List every fp32 entry (nothing to gate) in the terminal and the markdown; by default they are "
    "one count line.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help=f"Measure every model at exactly N samples (never time-capped; fewer than {MIN_SAMPLES} are marginal). "
    f"Default: adaptive: a pilot of {MIN_SAMPLES} plans the first look, looks double until every budget is "
    "decided (and a pass's drop known to 5 % of its budget), at most --max-samples.",
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
    help="Adaptive sampling takes no step predicted to end past this much time per model; the row is "
    "then marked time-capped (the only stop that depends on the machine's speed).",
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
    "--on-marginal",
    type=click.Choice(MARGINAL_POLICIES),
    default=None,
    help="What a marginal row (its interval still straddles a budget when sampling stops) counts as: "
    "fail (default: a budget not shown to be met is not met), warn (the point estimate decides, with a "
    "warning) or pass (the point estimate decides). --reference-compat defaults to pass.",
)
@click.option(
    "--model-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=MODEL_TIMEOUT,
    show_default=True,
    help="Seconds one model may take; a model still running then (ONNX Runtime stuck in a loop) becomes "
    "an error row and the others are measured.",
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
    show_skipped,
    samples,
    max_samples,
    max_seconds,
    seed,
    avx2_check,
    bench,
    budget,
    on_marginal,
    model_timeout,
    reference_compat,
    plots,
) -> int:
    """Run fp32 and int8 side by side and judge each model's drop against its budget.

    MODELS are registry ids or .onnx paths; none (or --all) means every entry. Exit code: 0 every
    gated model within budget, 1 one over budget, 2 one could not be judged, 3 nothing gated.

    \b
    Examples:
      quantgate gate                                   # every entry of the registry
      quantgate gate nr_metric_v1 --samples 512        # one model, a fixed sample count
      quantgate gate --json-out r.json --markdown-out r.md
      quantgate gate --json-out - | jq .verdict        # the results document on standard output
    """
    import time

    from ..gate.run import run_gate
    from ..paths import STDOUT, refuse_clobber, write_json, write_text
    from ..registry import shown_name
    from ..report.markdown import folded, render_markdown
    from ..report.terminal import detail_lines, row_lines, summary_line

    if all_ and models:
        raise click.UsageError("--all and named models exclude each other")
    if str(out_json) == STDOUT and str(markdown) == STDOUT:
        raise click.UsageError("--json-out - and --markdown-out - would both write to standard output; pick one")
    if plots is not None:
        from ..report.plots import check

        check(plots)
    refuse_clobber(out_json, "--json-out", {"registry": registry})
    refuse_clobber(markdown, "--markdown-out", {"registry": registry, "--json-out file": out_json})
    # with a document on standard output, the lines for the reader go to standard error
    to_stderr = STDOUT in (str(out_json), str(markdown))
    where = shown_name(registry)
    status = Status()
    shown = {"k": 0, "m": 0, "skipped": 0}

    def starting(model_id: str, k: int, m: int) -> None:
        shown["m"] = m
        if verbosity() >= 1:
            status.show(f"[{k}/{m}] measuring {plain(model_id)}…")

    def progress(row, i: int, n: int) -> None:
        status.clear()
        if folded(row) and not show_skipped:
            shown["skipped"] += 1
            return
        if verbosity() < 1:
            return
        first, *more = row_lines(row, where)
        tag, rest = first[:7], first[7:]
        counter = ""
        if row.status != "skipped":
            shown["k"] += 1
            counter = f" [{shown['k']}/{shown['m']}]" if shown["m"] > 1 else ""
        echo_styled(styled(tag, fg=TAG_COLOUR.get(row.status), bold=True) + rest + counter, err=to_stderr)
        for line in more:  # the emulated figures, then the warnings (in yellow)
            echo_styled(styled(line, fg="yellow") if "warning: " in line else line, err=to_stderr)
        for line in detail_lines(row) if verbosity() >= 2 else ():
            echo(line, err=to_stderr, level=2)

    started = time.monotonic()
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
        on_marginal=on_marginal,
        model_timeout=model_timeout,
        argv=sys.argv,
        progress=progress,
        starting=starting,
    )
    status.clear()
    elapsed = time.monotonic() - started
    if shown["skipped"] and verbosity() >= 1:
        echo_styled(
            styled("[SKIP ]", fg=TAG_COLOUR["skipped"], bold=True)
            + f" {shown['skipped']} fp32 entr{'y' if shown['skipped'] == 1 else 'ies'} not gated "
            "(nothing to compare; --show-skipped lists them)",
            err=to_stderr,
        )
    if out_json:
        write_json(out_json, results)
    if markdown:
        write_text(markdown, render_markdown(results, show_skipped=show_skipped))
    if plots is not None:
        from ..report.plots import gate_plots

        for p in gate_plots(results, registry, plots, seed=seed):
            echo(f"wrote {p}", err=to_stderr)
    written = [str(p) for p in (out_json, markdown) if p is not None and str(p) != STDOUT]
    tail = f"; done in {elapsed:.1f}s" + (f"; results in {' and '.join(written)}" if written else "")
    echo(summary_line(results) + tail, err=to_stderr, level=0)
    return results.exit_code
