"""`quantgate ptq-dynamic` and `quantgate ptq-static`: the post-training producers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_PASS
from ..paths import sidecar_path
from ..produce.config import METHODS, PRESET_NAMES, QUANT_FORMATS
from .base import Command, echo, echo_styled, styled
from .options import exclude_option, exclusions, input_spec_of, precheck, record, record_options


def _producer_options(f):
    f = click.option(
        "--report-out",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write a JSON report (sizes, ops quantised, settings, run_provenance).",
    )(f)
    f = click.option(
        "--preprocess/--no-preprocess",
        default=None,
        help="Run ONNX Runtime's pre-processing first (symbolic shape inference, basic fusion; default: off).",
    )(f)
    f = click.option(
        "--reduce-range/--no-reduce-range",
        default=None,
        help="7-bit weights (default: from the preset).",
    )(f)
    f = click.option(
        "--weight-type",
        type=click.Choice(list(_TYPES)),
        default=None,
        help="Weight type: u8 or s8 (default: from the preset).",
    )(f)
    f = click.option(
        "--preset",
        default="default",
        show_default=True,
        type=click.Choice(list(PRESET_NAMES)),
        help="CPU target preset (auto: detect this CPU's); explicit options override it.",
    )(f)
    f = click.option(
        "--per-channel/--no-per-channel",
        default=None,
        help="Per-channel weight scales (default: from the preset; on in the default preset).",
    )(f)
    f = click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Where to write the int8 model (default: <stem>.int8.onnx beside MODEL).",
    )(f)
    f = exclude_option(f)
    f = record_options(f)
    f = click.argument("model", type=click.Path(path_type=Path))(f)
    return f


_TYPES = {"u8": "quint8", "s8": "qint8"}


def _config(name: str, mode: str, **options):
    """The preset's settings for `mode` with the explicit options on top; says which preset
    `auto` chose and whether its files compute the same on every x86 CPU."""
    from ..produce.config import cpu_independent, resolve

    chosen, why = resolve(name)
    if why is not None:
        echo(f"preset auto: {chosen.name} ({why})")
    cfg = chosen.config(mode).with_options(**options)
    if not cpu_independent(cfg):
        echo(
            "note: full-range s8 weights: this file computes another result on x86 CPUs without VNNI "
            "(16-bit saturation); --preset default (7-bit or u8 weights) gives the same result on every x86 CPU"
        )
    return cfg


def _echo_result(r, report_out: Path | None) -> None:
    """The result line (printed with -q too), the notes, and with -v the settings that made it."""
    from ..coverage import problems

    ops = ", ".join(f"{k}×{v}" for k, v in r.quantized_ops.items()) or "none"
    cov = f"; {r.coverage.describe()}" if r.coverage is not None else ""
    echo(
        f"wrote {r.output} ({r.mode}): {r.fp32_bytes} → {r.int8_bytes} bytes (×{r.size_ratio:.2f}); "
        f"int8 ops: {ops}{cov}",
        level=0,
    )
    if report_out is not None:
        echo(f"wrote {report_out} (report)")
    if r.coverage is not None and r.coverage.int8_share is not None:
        fix = "static PTQ quantises them (quantgate ptq-static, or quantgate auto to try every mode)"
        for w in problems(r.coverage, None, fix):
            echo_styled(styled(f"warning: {w}", fg="yellow"), err=True)
    if r.int8_bytes > r.fp32_bytes:
        echo(
            "note: the int8 file is larger than fp32 (usual for models of a few KB: the "
            "quantisation parameters outweigh the saved weight bytes)"
        )
    report = r.to_json()
    cfg = report.get("config") or {}
    echo("  settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items()), level=2)
    pre = report.get("preflight") or {}
    if pre:
        echo("  pre-flight: " + ", ".join(f"{k}={v}" for k, v in pre.items()), level=2)
    if "wall_seconds" in report:
        echo(f"  took {report['wall_seconds']:.2f}s", level=2)


def _produce(
    mode: str,
    model: Path,
    output: Path | None,
    registry_id,
    registry: Path,
    report_out,
    run,
    *,
    set_mode: bool = False,
    calibration: Path | None = None,
) -> int:
    """One producer run: check the registry entry and the paths first, then `run()` (which writes
    the sidecar and its report) and record its digest (and mode) when asked, all or nothing: when
    the report or the registry cannot be written, the sidecar is put back as it was. Then say
    what was written."""
    from ..paths import all_or_nothing

    sidecar = output or sidecar_path(model)
    precheck(
        registry_id,
        registry,
        model,
        sidecar,
        mode=mode,
        report_out=report_out,
        set_mode=set_mode,
        calibration=calibration,
    )
    with all_or_nothing(sidecar, report_out):
        r = run()
        recorded = record(registry_id, registry, model, r.output, mode=mode, set_mode=set_mode, calibration=calibration)
    _echo_result(r, report_out)
    for line in recorded:
        echo(line, level=0)
    return EXIT_PASS


def _op_types(value: str | None):
    if value is None:
        return None
    ops = tuple(v.strip() for v in value.split(",") if v.strip())
    if not ops:
        raise click.BadParameter("give op types such as MatMul,Gemm", param_hint="--op-types")
    return ops


@click.command("ptq-dynamic", cls=Command)
@_producer_options
@click.option(
    "--op-types", help="Comma-separated op types to quantise (default: MatMul,Gemm,Gather; Gather: weight tables only)."
)
def ptq_dynamic(
    model,
    registry_id,
    set_mode,
    registry,
    exclude_node,
    output,
    per_channel,
    preset,
    weight_type,
    reduce_range,
    preprocess,
    report_out,
    op_types,
) -> int:
    """Dynamic PTQ: int8 weights, activations quantised at run time; needs no data.

    Writes MODEL's sidecar, <stem>.int8.onnx beside it (or --output).

    \b
    Examples:
      quantgate ptq-dynamic model/tiny/mlp_regressor_v1.onnx
      quantgate ptq-dynamic models/scorer.onnx --registry-id scorer             # record its digest
      quantgate ptq-dynamic models/scorer.onnx --registry-id scorer --set-mode  # fp32 entry -> dynamic
    """
    from ..produce.dynamic import quantize_dynamic

    cfg = _config(
        preset,
        "dynamic",
        per_channel=per_channel,
        op_types=_op_types(op_types),
        weight_type=_TYPES.get(weight_type or ""),
        reduce_range=reduce_range,
        preprocess=preprocess,
        nodes_to_exclude=exclusions(registry_id, registry, exclude_node),
    )
    return _produce(
        "dynamic",
        model,
        output,
        registry_id,
        registry,
        report_out,
        lambda: quantize_dynamic(
            model,
            output,
            config=cfg,
            report_out=report_out,
            argv=sys.argv,
            input_spec=input_spec_of(registry_id, registry),
        ),
        set_mode=set_mode,
    )


@click.command("ptq-static", cls=Command)
@_producer_options
@click.option(
    "--calibration",
    "-c",
    required=True,
    type=click.Path(path_type=Path),
    help="Calibration set .npz: one array per input name, [N, ...].",
)
@click.option("--method", type=click.Choice(list(METHODS)), default=None, help="Calibration method (default: minmax).")
@click.option("--op-types", help="Comma-separated op types to quantise (default: all supported).")
@click.option(
    "--activation-type",
    type=click.Choice(list(_TYPES)),
    default=None,
    help="Activation type: u8 or s8 (default: from the preset).",
)
@click.option(
    "--format",
    "quant_format",
    type=click.Choice(list(QUANT_FORMATS)),
    default=None,
    help="qdq (QuantizeLinear/DequantizeLinear around float ops) or qoperator (QLinearConv, ...); default: qdq.",
)
def ptq_static(
    model,
    registry_id,
    set_mode,
    registry,
    exclude_node,
    output,
    per_channel,
    preset,
    weight_type,
    reduce_range,
    preprocess,
    report_out,
    calibration,
    method,
    op_types,
    activation_type,
    quant_format,
) -> int:
    """Static PTQ (QDQ) calibrated on a calibration set.

    Writes MODEL's sidecar, <stem>.int8.onnx beside it (or --output).

    \b
    Examples:
      quantgate ptq-static model/tiny/conv_filter_v1.onnx -c model/tiny/calibration/conv_filter_v1.npz
      quantgate ptq-static models/denoise.onnx -c cal/denoise.npz --registry-id denoise --set-mode
    """
    from ..produce.static import quantize_static

    cfg = _config(
        preset,
        "static",
        per_channel=per_channel,
        method=method,
        op_types=_op_types(op_types),
        weight_type=_TYPES.get(weight_type or ""),
        activation_type=_TYPES.get(activation_type or ""),
        reduce_range=reduce_range,
        preprocess=preprocess,
        quant_format=quant_format,
        nodes_to_exclude=exclusions(registry_id, registry, exclude_node),
    )
    return _produce(
        "static",
        model,
        output,
        registry_id,
        registry,
        report_out,
        lambda: quantize_static(model, calibration, output, config=cfg, report_out=report_out, argv=sys.argv),
        set_mode=set_mode,
        calibration=calibration,
    )
