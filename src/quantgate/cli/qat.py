"""`quantgate qat`: quantisation-aware training, then static PTQ of the conditioned weights."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_PASS
from ..qat.checks import EXPORTERS
from .base import Command, echo, verbosity
from .options import exclusions, option_group, precheck, record, record_options

_path = click.Path(dir_okay=False, path_type=Path)


# The training settings an option overrides in the config (each as the config's own key).
_training_options = option_group(
    click.option(
        "--epochs-fp32", type=int, default=None, help="fp32 warm-start epochs (config: qat.epochs_fp32, default 20)."
    ),
    click.option(
        "--epochs-qat", type=int, default=None, help="QAT fine-tune epochs (config: qat.epochs_qat, default 10)."
    ),
    click.option("--lr-qat", type=float, default=None, help="QAT learning rate (default: the fp32 lr / 10)."),
    click.option(
        "--n-calibration",
        type=int,
        default=None,
        help="Calibration samples drawn from the training data for the final static PTQ (default 64).",
    ),
    click.option(
        "--seed", type=int, default=None, help="Seed of the split, shuffles and init (config: seed, default 0)."
    ),
)
# The run's other files, each written only when asked for.
_keep_options = option_group(
    click.option("--keep-fp32", type=_path, help="Also write the QAT-conditioned fp32 ONNX export here."),
    click.option("--keep-warm-fp32", type=_path, help="Also write the fp32 warm-start (pre-QAT) ONNX export here."),
    click.option("--keep-calibration", type=_path, help="Also write the calibration set (.npz) used for the PTQ."),
)


@click.command(cls=Command)
@click.option("--config", "config", required=True, type=_path, help="QAT config YAML (see docs/qat.md).")
@click.option("--output", "-o", required=True, type=_path, help="Where to write the int8 model (MODEL.int8.onnx).")
@_training_options
@click.option("--smoke", is_flag=True, help="Skip both training phases: check the wiring end to end in seconds.")
@click.option(
    "--report-out", type=_path, help="Write a JSON report (paths, phases, wall times, losses, run_provenance)."
)
@_keep_options
@click.option(
    "--exporter",
    type=click.Choice(list(EXPORTERS)),
    default=None,
    help="torch ONNX exporter (config: qat.exporter, default torchscript).",
)
@record_options
def qat(
    config,
    output,
    smoke,
    report_out,
    keep_fp32,
    keep_warm_fp32,
    keep_calibration,
    registry_id,
    set_mode,
    registry,
    **overrides,
) -> int:
    """Quantisation-aware training: fp32 warm start, fake-quant fine-tune, then static PTQ.

    Needs torch: pip install torch==2.13.0 onnxscript==0.7.2 (in a quantgate checkout: pip install '.[qat]').

    \b
    Examples:
      quantgate qat --config model/qat/outlier_mlp_v1.yaml -o model/tiny/outlier_mlp_v1.int8.onnx
      quantgate qat --config cfg.yaml -o models/m.int8.onnx --registry-id m --set-mode
      quantgate qat --config cfg.yaml -o /tmp/m.int8.onnx --smoke      # the wiring, in seconds
    """
    from ..qat import require_torch

    require_torch()
    from ..paths import all_or_nothing
    from ..qat.config import load_config
    from ..qat.pipeline import Progress, run

    # the fp32 file the sidecar pairs with: the warm start when this run writes it, else <stem>.onnx beside it
    fp32 = keep_warm_fp32 or output.with_name(output.name.removesuffix(".int8.onnx") + ".onnx")
    written = keep_warm_fp32 is not None
    precheck(
        registry_id, registry, fp32, output, mode="qat", fp32_written=written, report_out=report_out, set_mode=set_mode
    )
    s = load_config(config).with_overrides(
        **overrides,  # _training_options and --exporter, each named as the config's key
        nodes_to_exclude=exclusions(registry_id, registry, ()) or None,
    )
    # all or nothing: a report or registry that cannot be written puts every file back as it was
    with all_or_nothing(output, report_out, keep_fp32, keep_warm_fp32, keep_calibration):
        r = run(
            s,
            output,
            smoke=smoke,
            keep_fp32=keep_fp32,
            keep_warm_fp32=keep_warm_fp32,
            keep_calibration=keep_calibration,
            report_out=report_out,
            progress=Progress(stream=sys.stderr, enabled=verbosity() >= 1),
            argv=sys.argv,
        )
        recorded = record(registry_id, registry, fp32, r.output, mode="qat", fp32_written=written, set_mode=set_mode)
    _echo_trained(r)
    for line in recorded:
        echo(line, level=0)
    return EXIT_PASS


def _echo_trained(r) -> None:
    """What `qat` made: the sidecar with its training figures (printed with -q too), the losses
    (with -vv) and the other files written."""
    sec = r.seconds
    ratio = f", QAT/fp32 training time x{r.training_time_ratio:.2f}" if r.training_time_ratio else ""
    echo(
        f"wrote {r.output} (qat{', smoke' if r.smoke else ''}): {r.parameter_count} parameters, "
        f"weights moved {r.weight_change['relative_l2']:.3g} (rel. L2) in QAT; "
        f"fp32 {sec['fp32']:.1f}s + qat {sec['qat']:.1f}s + export/ptq {sec['export'] + sec['ptq']:.1f}s{ratio}",
        level=0,
    )
    losses = r.report.get("losses") or {}
    if losses:
        echo("  losses: " + ", ".join(f"{k} {v:.6g}" for k, v in losses.items() if isinstance(v, float)), level=2)
    for label, p in (
        ("conditioned fp32", r.fp32_path),
        ("warm-start fp32", r.warm_fp32_path),
        ("calibration set", r.calibration_path),
        ("report", r.report_path),
    ):
        if p is not None:
            echo(f"wrote {p} ({label})")
