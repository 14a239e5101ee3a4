"""What a QAT run hands back: `QatResult` (paths, losses, wall times, weight change) and the JSON
report that records the run's phases, settings and provenance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import provenance
from ..paths import write_json
from ..results import Produced
from .config import QatSettings
from .data import TrainingData
from .export import Outputs, weight_range


@dataclass(kw_only=True)
class QatResult(Produced):
    """What a run produced and measured. Paths are None where nothing was kept."""

    fp32_path: Path | None
    warm_fp32_path: Path | None
    calibration_path: Path | None
    report_path: Path | None
    parameter_count: int
    losses: dict
    seconds: dict
    weight_change: dict
    smoke: bool

    @property
    def training_time_ratio(self) -> float | None:
        """QAT total training time / fp32-only training time (None when fp32 did not train)."""
        f, q = self.seconds.get("fp32", 0.0), self.seconds.get("qat", 0.0)
        return (f + q) / f if f > 0 else None


def make_result(
    out: Outputs, *, parameter_count: int, losses: dict, seconds: dict, weight_change: dict, smoke: bool
) -> QatResult:
    return QatResult(
        output=out.int8,
        fp32_path=Path(out.fp32) if out.fp32 else None,
        warm_fp32_path=Path(out.warm_fp32) if out.warm_fp32 else None,
        calibration_path=Path(out.calibration) if out.calibration else None,
        report_path=Path(out.report) if out.report else None,
        parameter_count=parameter_count,
        losses=losses,
        seconds=seconds,
        weight_change=weight_change,
        smoke=smoke,
    )


def _fake_quant(s: QatSettings) -> dict:
    """The fake-quant scheme the QAT phase trained with, in words."""
    return {
        "activations": (
            "int8 symmetric per-tensor [-127, 127]"
            if s.activations == "symmetric"
            else "uint8 affine per-tensor [0, 255]"
        ),
        "weights": "int8 symmetric per-channel [{}, {}]".format(*weight_range(s.reduce_range)),
        "backend_config": "qnnpack" if s.activations == "symmetric" else "native",
    }


def _phases(s: QatSettings, seconds: dict, epochs: dict, n_calibration: int, ptq_report: dict) -> dict:
    ptq = dict(ptq_report)
    ptq.pop("run_provenance", None)  # the QAT report carries its own
    ptq.pop("model", None)
    io = s.resolved_io
    return {
        "fp32": {
            "epochs": epochs["fp32"],
            "lr": s.lr,
            "batch_size": s.batch_size,
            "optimizer": "adam",
            "schedule": "cosine",
            "wall_seconds": seconds["fp32"],
        },
        "qat": {
            "epochs": epochs["qat"],
            "lr": s.effective_lr_qat,
            "batch_size": s.batch_size,
            "distill": s.distill,
            "fake_quant": _fake_quant(s),
            "wall_seconds": seconds["qat"],
        },
        "export": {
            "exporter": s.exporter,
            "opset": s.opset,
            "input_names": list(io.input_names),
            "input_shapes": [list(x) for x in io.input_shapes],
            "output_names": list(io.output_names),
            "dynamic_axes": {k: {str(a): v for a, v in d.items()} for k, d in (s.dynamic_axes or {}).items()},
            "wall_seconds": seconds["export"],
        },
        "ptq": {"n_calibration": n_calibration, **ptq, "wall_seconds": seconds["ptq"]},
    }


def build_report(
    result: QatResult,
    s: QatSettings,
    out: Outputs,
    *,
    data: TrainingData,
    n_train: int,
    n_val: int,
    epochs: dict,
    n_calibration: int,
    ptq_report: dict,
    argv: list[str] | None,
) -> dict:
    """The JSON report of a run; `epochs` are the epochs each phase ran (0 and 0 for a smoke run)."""
    import torch

    inputs_prov = {}
    if s.source != "run_qat" and Path(s.source).is_file():
        inputs_prov["config"] = Path(s.source)
    if s.data.path is not None:
        inputs_prov["data"] = s.data.path
    return {
        "schema_version": 1,
        "kind": "qat",
        "smoke": result.smoke,
        "model": {
            "factory": s.factory,
            "kwargs": s.kwargs,
            "init": str(s.init) if s.init else None,
            "parameter_count": result.parameter_count,
        },
        "outputs": {
            "int8": str(out.int8),
            "fp32_conditioned": str(out.fp32) if out.fp32 else None,
            "fp32_warm": str(out.warm_fp32) if out.warm_fp32 else None,
            "calibration": str(out.calibration) if out.calibration else None,
        },
        "data": {"source": data.source, "samples": data.n, "train": n_train, "val": n_val},
        "phases": _phases(s, result.seconds, epochs, n_calibration, ptq_report),
        "seed": s.seed,
        "losses": result.losses,
        "weight_change": result.weight_change,
        "wall_seconds": result.seconds,
        "training_time_ratio": result.training_time_ratio,
        "settings": s.to_json(),
        "run_provenance": provenance.build(
            inputs=inputs_prov, root=None, argv=argv, extra_versions={"torch": torch.__version__}
        ),
    }


def write_report(result: QatResult, path: Path | str) -> None:
    write_json(path, result)
