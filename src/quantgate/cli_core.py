"""Core commands: validate, ptq-dynamic, ptq-static, gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli import main
from .errors import EXIT_ERROR, EXIT_PASS
from .registry import DEFAULT_REGISTRY

registry_option = click.option(
    "--registry", "registry", default=DEFAULT_REGISTRY, show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="The model registry JSON.")
root_option = click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Repository root that registry paths must stay inside (default: the git checkout "
         "holding the registry).")


@main.command()
@registry_option
@root_option
def validate(registry: Path, root: Path | None) -> int:
    """Check a registry against the schema and the files it names; list every problem."""
    from .registry import check_files, load_registry

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


def _producer_options(f):
    f = click.option("--report-out", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write a JSON report (sizes, ops quantised, settings, run_provenance).")(f)
    f = click.option("--preset", default="default", show_default=True,
                     type=click.Choice(["default", "avx2", "arm64"]),
                     help="CPU target preset; explicit options override it.")(f)
    f = click.option("--per-channel/--no-per-channel", default=None,
                     help="Per-channel weight scales (default: on for dynamic, off for static).")(f)
    f = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                     help="Where to write the int8 model (default: <stem>.int8.onnx beside MODEL).")(f)
    f = click.argument("model", type=click.Path(path_type=Path))(f)
    return f


def _echo_result(r) -> None:
    ops = ", ".join(f"{k}×{v}" for k, v in r.quantized_ops.items()) or "none"
    click.echo(f"wrote {r.output} ({r.mode}): {r.fp32_bytes} → {r.int8_bytes} bytes "
               f"(×{r.size_ratio:.2f}); int8 ops: {ops}")
    if r.int8_bytes > r.fp32_bytes:
        click.echo("note: the int8 file is larger than fp32 (usual for models of a few KB: the "
                   "quantisation parameters outweigh the saved weight bytes)")


def _op_types(value: str | None):
    if value is None:
        return None
    ops = tuple(v.strip() for v in value.split(",") if v.strip())
    if not ops:
        raise click.BadParameter("give op types such as MatMul,Gemm", param_hint="--op-types")
    return ops


@main.command("ptq-dynamic")
@_producer_options
@click.option("--op-types", help="Comma-separated op types to quantise (default: MatMul,Gemm).")
def ptq_dynamic(model, output, per_channel, preset, report_out, op_types) -> int:
    """Dynamic PTQ: int8 weights, activations quantised at run time; needs no data."""
    from .produce.config import preset as get_preset
    from .produce.dynamic import quantize_dynamic

    cfg = get_preset(preset, "dynamic").with_options(per_channel=per_channel, op_types=_op_types(op_types))
    r = quantize_dynamic(model, output, config=cfg, report_out=report_out, argv=sys.argv)
    _echo_result(r)
    return EXIT_PASS


@main.command("ptq-static")
@_producer_options
@click.option("--calibration", "-c", required=True, type=click.Path(path_type=Path),
              help="Calibration set .npz: one array per input name, [N, ...].")
@click.option("--method", type=click.Choice(["minmax", "entropy", "percentile"]), default=None,
              help="Calibration method (default: minmax).")
@click.option("--op-types", help="Comma-separated op types to quantise (default: all supported).")
def ptq_static(model, output, per_channel, preset, report_out, calibration, method, op_types) -> int:
    """Static PTQ (QDQ) calibrated on a calibration set."""
    from .produce.config import preset as get_preset
    from .produce.static import quantize_static

    cfg = get_preset(preset, "static").with_options(per_channel=per_channel, method=method,
                                          op_types=_op_types(op_types))
    r = quantize_static(model, calibration, output, config=cfg, report_out=report_out, argv=sys.argv)
    _echo_result(r)
    return EXIT_PASS


@main.command()
@click.argument("models", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Gate every entry (the default when none is named).")
@registry_option
@root_option
@click.option("--out-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results document (schema: quantgate/schemas/results.schema.json).")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results as a markdown table.")
@click.option("--samples", type=int, default=16, show_default=True, help="Samples per model.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the input draws.")
@click.option("--budget", type=float, default=None,
              help="Budget for a MODEL.onnx that no registry lists (default 0.01).")
@click.option("--reference-compat", is_flag=True,
              help="Feed only the first input and judge only the first output, as the first "
                   "user's reference gate did.")
@click.option("--quiet", "-q", is_flag=True, help="No per-model lines; only the summary.")
def gate(models, all_, registry, root, out_json, markdown, samples, seed, budget, reference_compat, quiet) -> int:
    """Run fp32 and int8 side by side and judge each model's drop against its budget.

    MODELS are registry ids or .onnx paths; none (or --all) means every entry.
    """
    from .gate import line_for, run_gate, write_results
    from .report.markdown import render_markdown

    if all_ and models:
        raise click.UsageError("--all and named models exclude each other")

    def progress(row):
        if not quiet:
            click.echo(line_for(row))

    results = run_gate(registry, list(models), root=root, samples=samples, seed=seed,
                       reference_compat=reference_compat, budget=budget, argv=sys.argv, progress=progress)
    if out_json:
        write_results(results, out_json)
    if markdown:
        from .paths import atomic_write_text
        atomic_write_text(markdown, render_markdown(results))
    c = results["counts"]
    worst = results["worst_drop"]
    click.echo(f"quantgate: {results['verdict'].upper()} — {c['pass']} passed, {c['fail']} failed, "
               f"{c['error']} errored, {c['skipped']} skipped"
               + (f"; worst drop {worst:.6f}" if worst is not None else ""))
    return results["exit_code"]
