"""`quantgate calibrate build|check`: argument handling for calibration sets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..calibrate.images import FITS, RANGES
from ..errors import EXIT_PASS
from ..registry import DEFAULT_REGISTRY
from .base import Group, echo, renamed, warn_renamed
from .options import option_group, split_list


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.6g}"


def _echo_inputs(inputs: list[dict]) -> None:
    for i in inputs:
        echo(
            f"  {i['name']}: {i['shape']} {i['dtype']}  min {_fmt(i['min'])}  max {_fmt(i['max'])}  "
            f"mean {_fmt(i['mean'])}  std {_fmt(i['std'])}"
        )


@click.group(cls=Group)
def calibrate() -> None:
    """Build and check calibration sets (.npz, one array per model input) for static PTQ and QAT."""


_path = click.Path(path_type=Path)

# What the set is made of: the rows drawn and how the source's columns or keys feed the inputs.
_draw_options = option_group(
    click.option(
        "--n",
        "n",
        type=int,
        default=None,
        help="Samples to draw (default 64); more than the source holds is an error unless --all.",
    ),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample draw."),
    click.option(
        "--all",
        "--take-all",
        "take_all",
        is_flag=True,
        help="Take every usable row of the source, in source order (excludes --n).",
    ),
    click.option(
        "--columns",
        multiple=True,
        metavar="COL[,COL...]",
        help="Parquet: the columns of the model's single input, in order (repeat or comma-separate).",
    ),
    click.option(
        "--map",
        "maps",
        multiple=True,
        metavar="COL=INPUT",
        help="Parquet column or .npz key feeding an input; repeat; several columns for one input "
        "are joined in the order given.",
    ),
    click.option(
        "--dim",
        "dims",
        multiple=True,
        metavar="NAME=VALUE",
        help="Value of a named symbolic dim of the model's inputs, e.g. --dim height=32.",
    ),
    click.option(
        "--drop-nonfinite",
        is_flag=True,
        help="Skip rows holding NaN, inf or null values (and report them) instead of refusing.",
    ),
)
# The registry row the set is recorded in.
_registry_options = option_group(
    click.option("--registry-id", help="Write quant_calibration_set into this registry row."),
    click.option(
        "--registry",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Registry that --registry-id edits (default {DEFAULT_REGISTRY}).",
    ),
    click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Repository root the registry's paths are relative to (default: the git checkout holding the registry).",
    ),
)
# How images become an input's values.
_image_options = option_group(
    click.option("--channels", type=int, default=None, help="Images: channel count 1, 3 or 4 (default: the model's)."),
    click.option("--size", default=None, metavar="HxW", help="Images: height x width (default: the model's)."),
    click.option(
        "--fit",
        type=click.Choice(list(FITS)),
        default="resize",
        show_default=True,
        help="Images: stretch to size, centre-crop at native scale, or scale to cover then centre-crop.",
    ),
    click.option(
        "--range",
        "value_range",
        type=click.Choice(list(RANGES)),
        default="0-1",
        show_default=True,
        help="Images: pixel value range before --mean/--std.",
    ),
    click.option(
        "--mean", default=None, metavar="M[,M,M]", help="Images: per-channel mean subtracted (in --range units)."
    ),
    click.option(
        "--std", default=None, metavar="S[,S,S]", help="Images: per-channel std divided by (in --range units)."
    ),
)


@calibrate.command()
@click.argument("model", required=False, type=_path)
@renamed(["--model", "-m"], "model", type=_path)
@click.option(
    "--from",
    "source",
    required=True,
    type=_path,
    help="Source: a .parquet feature cache, a .npy/.npz file, or a folder of PNG/JPEG images.",
)
@click.option("--output", "-o", "out", type=_path, help="The calibration set to write (.npz).")
@renamed("--out", "out", type=_path)
@_draw_options
@_registry_options
@click.option(
    "--report-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report (per-input statistics, skipped rows, source sha256, run_provenance).",
)
@_image_options
def build(model, source, out, registry_id, registry, root, report_out, **options) -> int:
    """Build a calibration set for MODEL (the fp32 .onnx) from a parquet cache, arrays or images.

    \b
    Examples:
      quantgate calibrate build model/tiny/nr_metric_v1.onnx --from frames/ -o cal/nr.npz --n 64
      quantgate calibrate build m.onnx --from features.parquet --columns f0,f1,f2 -o cal/m.npz
      quantgate calibrate build m.onnx --from arrays.npz -o cal/m.npz --registry-id m
    """
    from ..calibrate import build_set

    if model is None:
        raise click.UsageError("name the fp32 model: quantgate calibrate build MODEL --from SOURCE -o SET.npz")
    if out is None:
        raise click.UsageError("name the set to write: -o/--output SET.npz")
    opts = _build_options(**options)
    built = build_set(
        model,
        source,
        out,
        opts,
        registry=registry,
        registry_id=registry_id,
        root=root,
        report_out=report_out,
        argv=sys.argv,
    )
    _echo_built(built.report, out, source, report_out, opts)
    return EXIT_PASS


def _build_options(
    *, n, seed, take_all, columns, maps, dims, drop_nonfinite, channels, size, fit, value_range, mean, std
):
    """The `BuildOptions` (with its `ImageOptions`) that `calibrate build`'s options ask for."""
    from ..calibrate import BuildOptions, ImageOptions
    from ..calibrate.images import parse_floats, parse_size
    from ..calibrate.layout import parse_dims

    if take_all and n is not None:
        raise click.UsageError("--all takes every row; drop --n (or drop --all)")
    image = ImageOptions(
        channels=channels,
        size=parse_size(size),
        fit=fit,
        value_range=value_range,
        mean=parse_floats(mean, "--mean"),
        std=parse_floats(std, "--std"),
    )
    return BuildOptions(
        n=n,
        seed=seed,
        take_all=take_all,
        columns=split_list(columns),
        maps=tuple(maps),
        dims=parse_dims(dims),
        drop_nonfinite=drop_nonfinite,
        image=image,
    )


def _echo_built(r: dict, out: Path, source: Path, report_out: Path | None, opts) -> None:
    """What `calibrate build` wrote: the set (printed with -q too), the report, each input's
    statistics, the rows skipped and the registry edit."""
    s = r["source"]
    echo(
        f"wrote {out}: {r['calibration_set']['samples']} sample(s) from {s['kind']} {source} "
        f"({s['rows']} rows, sha256 {s['sha256'][:12]}), "
        + ("every usable row" if opts.take_all else f"seed {opts.seed}"),
        level=0,
    )
    echo(f"  source sha256 {s['sha256']}", level=2)
    if report_out is not None:
        echo(f"wrote {report_out} (report)")
    _echo_inputs(r["inputs"])
    sk = r["skipped"]
    if sk["count"]:
        why = ", ".join(f"{k} {v}" for k, v in sk["by_reason"].items())
        where = "; ".join(f"{w}: " + ", ".join(f"{k} {v}" for k, v in d.items()) for w, d in sk["where"].items())
        echo(f"  skipped {sk['count']} row(s): {why} ({where})")
    reg = r["registry"]
    if reg:
        verb = "set" if reg["changed"] else "already had"
        echo(f"{reg['path']}: {verb} {reg['id']}.{reg['field']} = {json.dumps(reg['value'])}")
        if reg["quant_mode"] not in ("static", "qat"):
            echo(
                f"note: '{reg['id']}' has quant_mode '{reg['quant_mode']}'; the set is used when it "
                'is "static" or "qat"'
            )


@calibrate.command()
@click.argument("paths", nargs=-1, metavar="MODEL SET.npz", type=click.Path(path_type=Path))
@click.option("--model", "-m", "old_model", hidden=True, type=click.Path(path_type=Path))
@click.option(
    "--min-samples", type=click.IntRange(min=1), default=1, show_default=True, help="Fewest samples the set may hold."
)
@click.option("--report-out", type=click.Path(dir_okay=False, path_type=Path), help="Write the check as JSON.")
def check(paths, old_model, min_samples, report_out) -> int:
    """Validate SET.npz against MODEL: keys, dtypes, shapes, finite values, sample count.

    \b
    Examples:
      quantgate calibrate check model/tiny/nr_metric_v1.onnx model/tiny/calibration/nr_metric_v1.npz
      quantgate calibrate check m.onnx cal/m.npz --min-samples 64
    """
    from ..calibrate import check_set
    from ..paths import refuse_clobber, write_json

    if old_model is not None:  # the old form: check SET.npz --model MODEL
        warn_renamed("--model", "the first argument (quantgate calibrate check MODEL SET.npz)")
        paths = (old_model, *paths)
    if len(paths) != 2:
        raise click.UsageError("give the model and the set: quantgate calibrate check MODEL SET.npz")
    model, set_path = paths

    refuse_clobber(report_out, "--report-out", {"calibration set": set_path, "model": model})
    checked = check_set(set_path, model, min_samples=min_samples)
    if report_out:
        write_json(report_out, checked)
    r = checked.report
    echo(f"{set_path}: ok — {r['calibration_set']['samples']} sample(s) for {model}", level=0)
    _echo_inputs(r["inputs"])
    return EXIT_PASS
