"""Static PTQ: int8 weights and activations with ranges calibrated on a calibration set; QDQ by
default (ONNX Runtime's recommended form), QOperator (QLinearConv, QLinearMatMul, ...) on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import sampleset as cal
from ..coverage import quantiser_names
from ..errors import UserError, one_line, param
from .config import QuantConfig, preset
from .pipeline import ProduceResult, inputs_of, preprocess, produce


def _ort_settings(cfg: QuantConfig):
    from onnxruntime.quantization import CalibrationMethod, QuantType

    qt = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[cfg.method]
    extra = {"CalibPercentile": cfg.percentile} if cfg.method == "percentile" else {}
    return qt[cfg.activation_type], qt[cfg.weight_type], method, {**extra, **cfg.extra}


PER_CHANNEL_OPSET = 13
# Samples ONNX Runtime's MinMax calibrator holds at once. Left alone it keeps every sample's
# per-tensor ranges as separate small arrays until the end: about 10 KB a sample for a 5-node MLP,
# 440 times a set of 6 floats a sample (4 GB for a 9 MB set). In chunks (its CalibStridedMinMax)
# it merges each chunk into the running min and max, which gives the same ranges, bytes for bytes.
CALIBRATION_CHUNK = 64
# Methods whose calibrator keeps every calibrated activation of every sample to build histograms;
# they are not chunked (a later chunk with a wider range regrows the histogram without bound), so
# what they would hold is measured first and refused over limits.CALIBRATION_BYTES.
HISTOGRAM_METHODS = ("entropy", "percentile")


def activation_bytes(model: Path, feed: dict[str, np.ndarray]) -> int:
    """Bytes of every floating-point tensor the model computes for one sample (`feed`): what a
    histogram calibrator keeps of each sample, or a little more."""
    import onnx
    from onnx import helper

    from ..onnxio import session

    m = onnx.load(str(model))
    names = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for out in node.output:
            if out and out not in names:
                m.graph.output.append(helper.make_empty_tensor_value_info(out))
                names.add(out)
    sess = session(m.SerializeToString(), label=f"{model} (every activation)")
    return sum(int(a.nbytes) for a in sess.run(None, feed) if isinstance(a, np.ndarray) and a.dtype.kind == "f")


def _refuse_unbounded(model: Path, feed: dict, n: int, method: str, label: str) -> None:
    """One line, before calibrating, when a histogram calibration would hold more activations than
    `limits.CALIBRATION_BYTES` (one sample's activations measured, times the samples)."""
    from .. import limits

    try:
        per = activation_bytes(model, feed)
    except UserError:
        return  # the quantiser's own run says what is wrong with the model
    cap = limits.CALIBRATION_BYTES.value()
    if per * n > cap:
        raise UserError(
            f"{method} calibration keeps every activation of every sample: {n:,} samples x {per:,} bytes = "
            f"{per * n:,} bytes, over the limit of {cap:,}",
            subject=label,
            fix=f"calibrate on at most {max(cap // max(per, 1), 1):,} samples, use {param('method')} minmax "
            f"(which streams), or {limits.CALIBRATION_BYTES.fix()}",
        )


def quantize_static(
    model: str | Path,
    calibration: str | Path | dict[str, np.ndarray],
    output: str | Path | None = None,
    *,
    config: QuantConfig | None = None,
    report_out: str | Path | None = None,
    argv: list[str] | None = None,
    mode: str = "static",
) -> ProduceResult:
    """Write the static-PTQ (QDQ) sidecar of `model`, calibrated on `calibration`
    (an .npz path or a dict of arrays keyed by input name). `mode` is what the sidecar records
    it is: "static", or "qat" when QAT's conditioned export is being quantised."""
    cfg = config or preset("default", "static")
    model = Path(model)
    if isinstance(calibration, dict):
        cal_path, arrays = None, calibration
    else:
        cal_path = Path(calibration)
        arrays = cal.read_npz(cal_path)
    run = _StaticRun(cfg, model, arrays, cal_path)
    return produce(
        mode=mode,
        model_path=model,
        output=Path(output) if output else None,
        quantise=run.quantise,
        sample_feed=run.first_feed,
        config=cfg.to_json(),
        report_out=Path(report_out) if report_out else None,
        extra_inputs={"calibration": cal_path} if cal_path else None,
        argv=argv,
        exclude=cfg.nodes_to_exclude,
    )


class _StaticRun:
    """One static quantisation of `model` on the calibration `arrays` (read from `cal_path`, or
    given): what `produce` calls to quantise the scratch copy, then for the one-sample check."""

    def __init__(self, cfg: QuantConfig, model: Path, arrays: dict[str, np.ndarray], cal_path: Path | None):
        self.cfg, self.model, self.arrays, self.cal_path = cfg, model, arrays, cal_path
        self.label = str(cal_path) if cal_path else "calibration arrays"
        self.inputs: list = []  # the model's inputs, once the pre-flighted model is known

    def quantise(self, src: Path, dst: Path, prepared) -> dict:
        cfg = self.cfg
        if cfg.per_channel and prepared.opset < PER_CHANNEL_OPSET:  # QuantizeLinear's axis arrived in opset 13
            raise UserError(
                f"opset {prepared.opset}: per-channel static quantisation needs opset {PER_CHANNEL_OPSET} or later",
                subject=str(self.model),
                fix="quantise per tensor (--no-per-channel; per_channel=False in a QuantConfig), or upgrade the "
                f"model to opset {PER_CHANNEL_OPSET} with onnx.version_converter",
            )
        ins = self.inputs = inputs_of(prepared, self.model)
        n = cal.validate(self.arrays, ins, label=self.label)
        pre: dict = {}
        if cfg.preprocess:
            src, pre["preprocess"] = preprocess(src, self.model)
        self._calibrate(src, dst, n)
        return {
            "calibration": {
                "path": str(self.cal_path) if self.cal_path else None,
                "inputs": [s.name for s in ins],
                "samples": n,
            },
            **pre,
        }

    def _calibrate(self, src: Path, dst: Path, n: int) -> None:
        """ONNX Runtime's `quantize_static` of `src` into `dst` on the `n` samples: MinMax chunk by
        chunk (in bounded memory), a histogram method refused first when it would hold too much."""
        from onnxruntime.quantization import QuantFormat
        from onnxruntime.quantization import quantize_static as ort_quantize_static

        cfg, ins = self.cfg, self.inputs
        act, wt, method, extra = _ort_settings(cfg)
        chunk = None
        if cfg.method in HISTOGRAM_METHODS:
            _refuse_unbounded(src, next(cal.feeds(self.arrays, ins)), n, cfg.method, self.label)
        else:
            chunk = CALIBRATION_CHUNK
            extra = {**extra, "CalibStridedMinMax": chunk}
        try:
            ort_quantize_static(
                str(src),
                str(dst),
                cal.reader(self.arrays, ins, chunk=chunk),
                quant_format=QuantFormat.QOperator if cfg.quant_format == "qoperator" else QuantFormat.QDQ,
                op_types_to_quantize=list(cfg.op_types) if cfg.op_types else None,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range,
                activation_type=act,
                weight_type=wt,
                calibrate_method=method,
                nodes_to_exclude=quantiser_names(cfg.nodes_to_exclude) or None,
                extra_options=extra or None,
            )
        except UserError:
            raise
        except MemoryError:
            raise UserError(
                f"static quantisation ran out of memory calibrating on {n} samples of {self.label}",
                subject=str(self.model),
                fix="calibrate on fewer samples",
            ) from None
        except Exception as e:
            raise UserError(f"static quantisation failed: {one_line(e, 300)}", subject=str(self.model)) from None

    def first_feed(self, _prepared) -> dict[str, np.ndarray]:
        return next(cal.feeds(self.arrays, self.inputs))
