"""`quantgate validate` and `quantgate gate`: the registry and the accuracy gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_ERROR, EXIT_PASS
from ..gate.settings import DEFAULT_SEED, MARGINAL_POLICIES, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, MODEL_TIMEOUT
from ..text import plain
from .base import Command, Status, echo, echo_styled, renamed, styled, verbosity
from .options import option_group, registry_option, root_option


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


# Where the results go besides the terminal.
_output_options = option_group(
    click.option(
        "--json-out",
        "out_json",
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        help="Write the results document (schema: quantgate/schemas/results.schema.json); - for standard output.",
    ),
    renamed("--out-json", "out_json", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path)),
    click.option(
        "--markdown-out",
        "markdown",
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        help="Write the results as a markdown table; - for standard output.",
    ),
    renamed("--markdown", "markdown", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path)),
    click.option(
        "--show-skipped",
        is_flag=True,
        help="List every fp32 entry (nothing to gate) in the terminal and the markdown; by default they are "
        "one count line.",
    ),
)
# How each model is measured and judged: each option is the run_gate parameter of its name.
_measure_options = option_group(
    click.option(
        "--samples",
        type=click.IntRange(min=1),
        default=None,
        help=f"Measure every model at exactly N samples (never time-capped; fewer than {MIN_SAMPLES} are marginal). "
        f"Default: adaptive: a pilot of {MIN_SAMPLES} plans the first look, looks double until every budget is "
        "decided (and a pass's drop known to 5 % of its budget), at most --max-samples.",
    ),
    click.option(
        "--max-samples",
        type=click.IntRange(min=1),
        default=MAX_SAMPLES,
        show_default=True,
        help="Adaptive sampling stops here.",
    ),
    click.option(
        "--max-seconds",
        type=click.FloatRange(min=0, min_open=True),
        default=MAX_SECONDS,
        show_default=True,
        help="Adaptive sampling takes no step predicted to end past this much time per model; the row is "
        "then marked time-capped (the only stop that depends on the machine's speed).",
    ),
    click.option(
        "--seed",
        type=click.IntRange(min=0),
        default=DEFAULT_SEED,
        show_default=True,
        help="Seed of the input draws (and of the bootstrap).",
    ),
    click.option(
        "--avx2-check",
        is_flag=True,
        help="Also measure each model as an AVX2-only x86 CPU computes it, under "
        "qemu-x86_64 -cpu Haswell (needs qemu-user; about 10x slower).",
    ),
    click.option(
        "--bench",
        is_flag=True,
        help="Also time fp32 against int8 on this machine (1 thread and the default thread count, batch 1 "
        "and 16 where the model takes a batch) and warn where int8 is slower; never changes a verdict.",
    ),
    click.option(
        "--budget", type=float, default=None, help="Budget for a MODEL.onnx that no registry lists (default 0.01)."
    ),
    click.option(
        "--on-marginal",
        type=click.Choice(MARGINAL_POLICIES),
        default=None,
        help="What a marginal row (its interval still straddles a budget when sampling stops) counts as: "
        "fail (default: a budget not shown to be met is not met), warn (the point estimate decides, with a "
        "warning) or pass (the point estimate decides). --reference-compat defaults to pass.",
    ),
    click.option(
        "--model-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=MODEL_TIMEOUT,
        show_default=True,
        help="Seconds one model may take; a model still running then (ONNX Runtime stuck in a loop) becomes "
        "an error row and the others are measured.",
    ),
    click.option(
        "--reference-compat",
        is_flag=True,
        help="Feed only the first input and judge only the first output, as the first user's reference gate did.",
    ),
)


@click.command(cls=Command)
@click.argument("models", nargs=-1, shell_complete=complete_ids)
@click.option("--all", "all_", is_flag=True, help="Gate every entry (the default when none is named).")
@registry_option
@root_option
@_output_options
@_measure_options
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a scatter of int8 against fp32 outputs and an error histogram per model into this folder "
    "(needs matplotlib: pip install 'quantgate[plots]').",
)
def gate(models, all_, registry, root, out_json, markdown, show_skipped, plots, **measure) -> int:
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
    from ..paths import STDOUT
    from ..registry import shown_name
    from ..report.terminal import summary_line

    if all_ and models:
        raise click.UsageError("--all and named models exclude each other")
    _check_outputs(registry, out_json, markdown, plots)
    # with a document on standard output, the lines for the reader go to standard error
    lines = _RowLines(shown_name(registry), show_skipped, to_stderr=STDOUT in (str(out_json), str(markdown)))
    started = time.monotonic()
    results = run_gate(
        registry,
        list(models),
        root=root,
        **measure,  # _measure_options
        argv=sys.argv,
        progress=lines.row,
        starting=lines.starting,
    )
    lines.done()
    elapsed = time.monotonic() - started
    written = _write_results(results, registry, out_json, markdown, plots, show_skipped, measure["seed"], lines.err)
    tail = f"; done in {elapsed:.1f}s" + (f"; results in {' and '.join(written)}" if written else "")
    echo(summary_line(results) + tail, err=lines.err, level=0)
    return results.exit_code


def _check_outputs(registry: Path, out_json: Path | None, markdown: Path | None, plots: Path | None) -> None:
    """Before any model is measured: at most one document on standard output, a plots folder that
    can be written, and no output that would replace the registry (or the other output)."""
    from ..paths import STDOUT, refuse_clobber

    if str(out_json) == STDOUT and str(markdown) == STDOUT:
        raise click.UsageError("--json-out - and --markdown-out - would both write to standard output; pick one")
    if plots is not None:
        from ..report.plots import check

        check(plots)
    refuse_clobber(out_json, "--json-out", {"registry": registry})
    refuse_clobber(markdown, "--markdown-out", {"registry": registry, "--json-out file": out_json})


class _RowLines:
    """The gate's lines while it runs: a status line for the model being measured (on a
    terminal), then each row as it is judged, counted `[k/m]`, in its colour; fp32 entries folded
    into one count line unless `show_skipped`. On standard error when `err`."""

    def __init__(self, where: str, show_skipped: bool, *, to_stderr: bool):
        self.where, self.show_skipped, self.err = where, show_skipped, to_stderr
        self.status = Status()
        self.k = self.m = self.skipped = 0

    def starting(self, model_id: str, k: int, m: int) -> None:
        self.m = m
        if verbosity() >= 1:
            self.status.show(f"[{k}/{m}] measuring {plain(model_id)}…")

    def row(self, row, _i: int, _n: int) -> None:
        from ..report.markdown import folded
        from ..report.terminal import detail_lines, row_lines

        self.status.clear()
        if folded(row) and not self.show_skipped:
            self.skipped += 1
            return
        if verbosity() < 1:
            return
        first, *more = row_lines(row, self.where)
        tag, rest = first[:7], first[7:]
        counter = ""
        if row.status != "skipped":
            self.k += 1
            counter = f" [{self.k}/{self.m}]" if self.m > 1 else ""
        echo_styled(styled(tag, fg=TAG_COLOUR.get(row.status), bold=True) + rest + counter, err=self.err)
        for line in more:  # the emulated figures, then the warnings (in yellow)
            echo_styled(styled(line, fg="yellow") if "warning: " in line else line, err=self.err)
        for line in detail_lines(row) if verbosity() >= 2 else ():
            echo(line, err=self.err, level=2)

    def done(self) -> None:
        """The status line cleared, and the count of fp32 entries not listed."""
        self.status.clear()
        if self.skipped and verbosity() >= 1:
            echo_styled(
                styled("[SKIP ]", fg=TAG_COLOUR["skipped"], bold=True)
                + f" {self.skipped} fp32 entr{'y' if self.skipped == 1 else 'ies'} not gated "
                "(nothing to compare; --show-skipped lists them)",
                err=self.err,
            )


def _write_results(
    results, registry: Path, out_json, markdown, plots, show_skipped: bool, seed: int, to_stderr: bool
) -> list[str]:
    """The results document, the markdown table and the pictures asked for; the files written
    (standard output aside)."""
    from ..paths import STDOUT, write_json, write_text
    from ..report.markdown import render_markdown

    if out_json:
        write_json(out_json, results)
    if markdown:
        write_text(markdown, render_markdown(results, show_skipped=show_skipped))
    if plots is not None:
        from ..report.plots import gate_plots

        for p in gate_plots(results, registry, plots, seed=seed):
            echo(f"wrote {p}", err=to_stderr)
    return [str(p) for p in (out_json, markdown) if p is not None and str(p) != STDOUT]
