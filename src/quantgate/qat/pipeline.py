"""The QAT pipeline (needs torch): fp32 warm start -> fake-quant insertion (`prepare_qat_fx`) ->
QAT fine-tune -> QAT-conditioned weights copied into a fresh fp32 module -> ONNX export ->
static PTQ (QDQ) calibrated on samples of the training distribution.

The int8 file has the structure of any static-PTQ sidecar; the QAT effect lives in the weights.
The fake quant mirrors the static PTQ of the last step, so the network is fine-tuned against the
rounding it will meet in ONNX Runtime: per-tensor u8 affine activations whose MinMax ranges are
measured on the PTQ's own calibration set (re-measured every epoch, frozen in between), and
symmetric per-channel weights on ONNX Runtime's 7-bit range (`reduce_range`). Checked: the
fake-quant model and ONNX Runtime's int8 run of the result agree to a drop of about 0.001.

This module runs the phases in order; each lives in its own module: `validate` (before any
training), `training` (fp32 warm start, QAT fine-tune), `fakequant`, `export` (ONNX and the
static PTQ) and `report`. Their public names are importable from here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .config import DataSpec, QatSettings, load_config
from .data import TrainingData, check_counts
from .export import Outputs, export_onnx, ptq_config, static_ptq, weight_range
from .fakequant import SCALE_MIN, copy_conditioned, insert_fake_quant
from .report import QatResult, build_report, make_result, write_report
from .training import (
    FineTune,
    Progress,
    Split,
    WarmStart,
    deterministic,
    evaluate,
    fine_tune,
    split_data,
    warm_start,
    weight_change,
)
from .validate import build_model, checked_model, load_inputs

__all__ = [
    "SCALE_MIN",
    "Progress",
    "QatResult",
    "copy_conditioned",
    "export_onnx",
    "insert_fake_quant",
    "ptq_config",
    "run",
    "run_qat",
    "weight_range",
]


@dataclass
class _Exported:
    """The export phase: the conditioned fp32 model (and the warm start's when kept) as ONNX bytes."""

    fp32_bytes: bytes
    warm_bytes: bytes | None
    val_loss: float | None  # the conditioned fp32 module's, before export
    weight_change: dict  # conditioned vs warm start
    seconds: float


def _export(
    tuned: FineTune, factory: Callable, warm: WarmStart, split: Split, s: QatSettings, keep_warm: bool
) -> _Exported:
    """A fresh fp32 module with the QAT-conditioned weights, measured and exported to ONNX."""
    t = time.perf_counter()
    conditioned = copy_conditioned(tuned.prepared, build_model(factory, s.kwargs, s), s)
    val = evaluate(conditioned, split, s)
    change = weight_change(conditioned, warm.model)
    dummy = tuple(torch.zeros(shape) for shape in s.resolved_io.input_shapes)
    fp32_bytes = export_onnx(conditioned, s, dummy)
    warm_bytes = export_onnx(warm.model, s, dummy) if keep_warm else None
    return _Exported(fp32_bytes, warm_bytes, val, change, time.perf_counter() - t)


def run(
    s: QatSettings,
    output: Path,
    *,
    smoke: bool = False,
    keep_fp32: Path | None = None,
    keep_warm_fp32: Path | None = None,
    keep_calibration: Path | None = None,
    report_out: Path | None = None,
    progress: Progress | None = None,
    argv: list[str] | None = None,
    factory: Callable | None = None,
    data: TrainingData | None = None,
) -> QatResult:
    """One QAT run from settings to the int8 file (and the kept files and report). `factory`
    and `data` replace the config's model and data when given (`run_qat` passes them)."""
    progress = progress or Progress(enabled=False)
    out = Outputs(Path(output), keep_fp32, keep_warm_fp32, keep_calibration, report_out)
    out.check({"config": s.source if Path(s.source).is_file() else None, "training data": s.data.path})
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    factory, data, s = load_inputs(s, factory, data)  # the validate time runs from here to the model's check
    with deterministic(s.seed):
        model = checked_model(factory, s, data)
        n_params = sum(p.numel() for p in model.parameters())
        seconds["validate"] = time.perf_counter() - started
        split = split_data(data, s)
        epochs = {"fp32": 0 if smoke else s.epochs_fp32, "qat": 0 if smoke else s.epochs_qat}
        progress.line(
            f"qat: {s.factory}: {n_params} parameters, {len(split.idx_train)} training / "
            f"{len(split.idx_val)} validation samples{' (smoke: no training)' if smoke else ''}"
        )
        warm = warm_start(model, factory, split, s, epochs["fp32"], progress)
        tuned = fine_tune(model, split, s, epochs["qat"], warm.teacher, progress)
        exported = _export(tuned, factory, warm, split, s, keep_warm=keep_warm_fp32 is not None)
        calibration = {
            name: a[tuned.cal_idx.numpy()] for name, a in zip(s.resolved_io.input_names, data.inputs, strict=False)
        }
    seconds.update(fp32=warm.seconds, qat=tuned.seconds, export=exported.seconds)
    t = time.perf_counter()
    ptq_report = static_ptq(out, exported.fp32_bytes, exported.warm_bytes, calibration, s, argv)
    seconds["ptq"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started
    seconds = {k: round(v, 3) for k, v in seconds.items()}

    losses = {
        "loss": s.loss,
        "fp32_train": warm.train_loss,
        "fp32_val": warm.val_loss,
        "qat_train": tuned.train_loss,
        "qat_val_fake_quant": tuned.val_loss,
        "conditioned_fp32_val": exported.val_loss,
    }
    result = make_result(
        out, parameter_count=n_params, losses=losses, seconds=seconds, weight_change=exported.weight_change, smoke=smoke
    )
    result.report = build_report(
        result,
        s,
        out,
        data=data,
        n_train=len(split.idx_train),
        n_val=len(split.idx_val),
        epochs=epochs,
        n_calibration=len(tuned.cal_idx),
        ptq_report=ptq_report,
        argv=argv,
    )
    if report_out is not None:
        write_report(result, report_out)
    return result


def _arrays(data) -> TrainingData:
    """`run_qat`'s `data`, (inputs, target) as arrays or tensors, as float32 training data."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise UserError(
            "expected (inputs, target)", subject="run_qat", field="data", fix="pass (inputs, target), arrays [N, ...]"
        )
    ins, tgt = data
    ins = list(ins) if isinstance(ins, (list, tuple)) else [ins]

    def to_np(a):
        return np.ascontiguousarray(a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a), dtype=np.float32)

    tdata = TrainingData([to_np(a) for a in ins], to_np(tgt), "arrays")
    check_counts(tdata, "run_qat")
    return tdata


def _overrides(settings: dict) -> dict:
    """`run_qat`'s keyword settings as QatSettings values: known names only, tuples for names/shapes."""
    unknown = sorted(set(settings) - set(QatSettings.__dataclass_fields__) - {"factory", "data", "source", "base_dir"})
    if unknown:
        raise UserError(
            f"unknown setting(s) {', '.join(unknown)}", subject="run_qat", fix="see QatSettings for the known ones"
        )
    for k in ("input_names", "output_names"):
        if isinstance(settings.get(k), (list, str)):
            v = settings[k]
            settings[k] = (v,) if isinstance(v, str) else tuple(v)
    if settings.get("input_shapes") is not None:
        settings["input_shapes"] = tuple(tuple(x) for x in settings["input_shapes"])
    return settings


def run_qat(
    model=None,
    data=None,
    output=None,
    *,
    config=None,
    kwargs: dict | None = None,
    smoke: bool = False,
    keep_fp32=None,
    keep_warm_fp32=None,
    keep_calibration=None,
    report_out=None,
    progress: bool | Progress = False,
    argv=None,
    **settings,
) -> QatResult:
    """Run the QAT pipeline from Python.

    model: an nn.Module class, a factory function, or 'FILE.py:NAME' / 'module:NAME';
    data: (inputs, target) with inputs one array or a list of arrays, each [N, ...];
    config: a QAT YAML file instead of (or as the base for) model/data; `settings` are
    QatSettings fields (loss, lr, batch_size, seed, epochs_fp32, epochs_qat, lr_qat, input_names,
    input_shapes, output_names, dynamic_axes, opset, exporter, n_calibration, val_fraction).
    """
    if output is None:
        raise UserError("missing", subject="run_qat", field="output", fix="pass output='model.int8.onnx'")
    if config is not None:
        s = load_config(config)
    elif model is None or data is None:
        raise UserError(
            "no model and data to train", subject="run_qat", fix="give model and data, or config='qat.yaml'"
        )
    else:
        s = QatSettings(
            factory=model if isinstance(model, str) else getattr(model, "__qualname__", "model"), data=DataSpec()
        )
    factory = None
    if model is not None and not isinstance(model, str):
        factory = model
        s = replace(s, factory=getattr(model, "__qualname__", repr(model)))
    elif isinstance(model, str):
        s = replace(s, factory=model)
    if kwargs is not None:
        s = replace(s, kwargs=dict(kwargs))
    tdata = None
    if data is not None:
        tdata = _arrays(data)
        s = replace(s, data=DataSpec())
    s = s.with_overrides(**_overrides(settings))
    if isinstance(progress, bool):
        progress = Progress(enabled=progress)
    return run(
        s,
        Path(output),
        smoke=smoke,
        keep_fp32=Path(keep_fp32) if keep_fp32 else None,
        keep_warm_fp32=Path(keep_warm_fp32) if keep_warm_fp32 else None,
        keep_calibration=Path(keep_calibration) if keep_calibration else None,
        report_out=Path(report_out) if report_out else None,
        progress=progress,
        argv=argv,
        factory=factory,
        data=tdata,
    )
