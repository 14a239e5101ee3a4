"""`quantgate ptq-dynamic` and `quantgate ptq-static`: the post-training producers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_PASS
from ..produce.config import METHODS, PRESETS
from .base import Command, echo
from .options import record, record_options


def _producer_options(f):
    f = click.option(
        "--report-out",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write a JSON report (sizes, ops quantised, settings, run_provenance).",
    )(f)
    f = click.option(
        "--preset",
        default="default",
        show_default=True,
        type=click.Choice(list(PRESETS)),
        help="CPU target preset; explicit options override it.",
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
    f = record_options(f)
    f = click.argument("model", type=click.Path(path_type=Path))(f)
    return f


def _echo_result(r) -> None:
    ops = ", ".join(f"{k}×{v}" for k, v in r.quantized_ops.items()) or "none"
    echo(f"wrote {r.output} ({r.mode}): {r.fp32_bytes} → {r.int8_bytes} bytes (×{r.size_ratio:.2f}); int8 ops: {ops}")
    if r.int8_bytes > r.fp32_bytes:
        echo(
            "note: the int8 file is larger than fp32 (usual for models of a few KB: the "
            "quantisation parameters outweigh the saved weight bytes)"
        )


def _op_types(value: str | None):
    if value is None:
        return None
    ops = tuple(v.strip() for v in value.split(",") if v.strip())
    if not ops:
        raise click.BadParameter("give op types such as MatMul,Gemm", param_hint="--op-types")
    return ops


@click.command("ptq-dynamic", cls=Command)
@_producer_options
@click.option("--op-types", help="Comma-separated op types to quantise (default: MatMul,Gemm).")
def ptq_dynamic(model, registry_id, registry, output, per_channel, preset, report_out, op_types) -> int:
    """Dynamic PTQ: int8 weights, activations quantised at run time; needs no data."""
    from ..produce.config import preset as get_preset
    from ..produce.dynamic import quantize_dynamic

    cfg = get_preset(preset, "dynamic").with_options(per_channel=per_channel, op_types=_op_types(op_types))
    r = quantize_dynamic(model, output, config=cfg, report_out=report_out, argv=sys.argv)
    _echo_result(r)
    record(registry_id, registry, model, r.output)
    return EXIT_PASS


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
def ptq_static(
    model, registry_id, registry, output, per_channel, preset, report_out, calibration, method, op_types
) -> int:
    """Static PTQ (QDQ) calibrated on a calibration set."""
    from ..produce.config import preset as get_preset
    from ..produce.static import quantize_static

    cfg = get_preset(preset, "static").with_options(
        per_channel=per_channel, method=method, op_types=_op_types(op_types)
    )
    r = quantize_static(model, calibration, output, config=cfg, report_out=report_out, argv=sys.argv)
    _echo_result(r)
    record(registry_id, registry, model, r.output)
    return EXIT_PASS
