"""From the QAT-conditioned fp32 module to the int8 file: the int8 scheme both ends share
(`weight_range`, `ptq_config`), ONNX export with the TorchScript or the dynamo exporter (and the
check of what the dynamo exporter wrote), and the static PTQ of the export that writes the
run's files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import optional
from ..errors import UserError, one_line, param
from ..paths import atomic_write_bytes, refuse_clobber
from ..produce.config import QuantConfig
from .config import QatSettings

# One source of truth for the int8 scheme: the fake quant during training and the PTQ at the end.
# Weights: int8 symmetric per-channel. With reduce_range (the default) on ONNX Runtime's 7-bit
# range [-64, 64]: u8 x s8 kernels without VNNI (AVX2) sum pairs of products in 16 bits, and
# 8-bit weights overflow it; measured here, that alone moved one model's drop from 0.004 to 0.034.


def weight_range(reduce_range: bool) -> tuple[int, int]:
    return (-64, 64) if reduce_range else (-127, 127)


def ptq_config(s: QatSettings) -> QuantConfig:
    """The static-PTQ settings matching the fake quant the run trained with."""
    if s.activations == "symmetric":
        # s8 activations: ONNX Runtime cannot fold Relu then and also quantises the pre-ReLU
        # tensor, which the fused torch modules do not model.
        return QuantConfig(
            per_channel=True,
            method="minmax",
            activation_type="qint8",
            weight_type="qint8",
            reduce_range=s.reduce_range,
            nodes_to_exclude=s.nodes_to_exclude,
            extra={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
    # u8 affine activations: ONNX Runtime folds each Relu into the range of the tensor before it,
    # as torch's fused LinearReLU/ConvReLU fake-quantise only after the ReLU.
    return QuantConfig(
        per_channel=True,
        method="minmax",
        activation_type="quint8",
        weight_type="qint8",
        reduce_range=s.reduce_range,
        nodes_to_exclude=s.nodes_to_exclude,
        extra={"WeightSymmetric": True},
    )


# torch.onnx's dynamo path logs through these (opset fallback, torchvision ops it skips, the
# version converter); the run's own progress lines stay the only output.
_EXPORT_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet_export():
    loggers = [logging.getLogger(n) for n in _EXPORT_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)


def _require_onnxscript(s: QatSettings) -> None:
    try:
        optional.require("onnxscript", what="the dynamo exporter", alternative="or use exporter: torchscript")
    except UserError as e:
        # keyed like every other config error (FILE: qat.exporter: ...); the fix is optional's
        raise UserError(
            "'dynamo' needs onnxscript, which is not installed", subject=s.source, field="qat.exporter", fix=e.fix
        ) from None


def _io_names(s: QatSettings) -> tuple[list[str], list[str]]:
    """The export's input and output names (`validate.resolve_io` fills them in when the config does not)."""
    if s.input_names is None or s.output_names is None:
        raise ValueError(f"{s.source}: the export needs input_names and output_names; see validate.resolve_io")
    return list(s.input_names), list(s.output_names)


def _export_dynamo(
    module: nn.Module, s: QatSettings, example: tuple, dst: Path, input_names: list[str], output_names: list[str]
) -> None:
    """`torch.onnx.export(dynamo=True)`: torch.export traces the module, torchlib (onnxscript)
    translates the ATen graph, onnxscript's optimizer folds constants.

    The config's dynamic_axes become `dynamic_shapes` (one {axis: label} per forward() argument;
    torch makes each a Dim.DYNAMIC and names the ONNX dimension after the label). torch.export
    specialises an axis whose example size is 1 (0/1 specialisation), so such an axis is
    exported with an example of size 2.
    """
    _require_onnxscript(s)
    axes = s.dynamic_axes or {}
    shapes = tuple({int(a): str(lbl) for a, lbl in axes[n].items()} if axes.get(n) else None for n in input_names)
    example = tuple(
        x.new_zeros([2 if (j in (shapes[i] or {}) and d == 1) else d for j, d in enumerate(x.shape)])
        for i, x in enumerate(example)
    )
    torch.onnx.export(
        module,
        example,
        str(dst),
        input_names=input_names,
        output_names=output_names,
        dynamic_shapes=shapes if any(x is not None for x in shapes) else None,
        opset_version=s.opset,
        dynamo=True,
        external_data=False,
        optimize=True,
        verbose=False,
    )


def _check_dynamo_graph(m, s: QatSettings) -> None:
    """What the dynamo exporter may do differently from what the config asked, fixed or refused."""
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != s.opset:
        raise UserError(
            f"the dynamo exporter wrote opset {opset}, not {s.opset} (its version converter could not go below 18 "
            "for this model)",
            subject=s.source,
            field="qat.opset",
            fix="set opset: 18 or use exporter: torchscript",
        )
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for axis, label in (s.dynamic_axes or {}).get(vi.name, {}).items():
            axis = int(axis)
            if axis >= len(dims) or not dims[axis].dim_param:
                got = dims[axis].dim_value if axis < len(dims) else "absent"
                raise UserError(
                    f"the dynamo exporter fixed axis {axis} to {got} (torch.export found it static in forward())",
                    subject=s.source,
                    field=f"qat.dynamic_axes.{vi.name}",
                    fix="drop that axis or use exporter: torchscript",
                )
            # outputs are named after the input's symbol (batch, or s0 for an expression): use the config's label
            dims[axis].dim_param = str(label)
    # shapes recorded for initialisers only shadow them (and a stale one breaks quantize_static)
    inits = {i.name for i in m.graph.initializer}
    keep = [vi for vi in m.graph.value_info if vi.name not in inits]
    del m.graph.value_info[:]
    m.graph.value_info.extend(keep)


def _export_file(module: nn.Module, s: QatSettings, example: tuple, dst: Path) -> None:
    """Run the configured exporter into `dst`; its failure is one line naming the other exporter."""
    input_names, output_names = _io_names(s)
    try:
        with _quiet_export():
            if s.exporter == "dynamo":
                _export_dynamo(module, s, example, dst, input_names, output_names)
            else:
                torch.onnx.export(
                    module,
                    example,
                    str(dst),
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_axes=s.dynamic_axes or None,
                    opset_version=s.opset,
                    dynamo=False,
                    do_constant_folding=True,
                )
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"the {s.exporter} ONNX export failed ({type(e).__name__}: {one_line(e, 200)})",
            subject=s.source,
            field="qat.exporter",
            fix=f"try exporter: {'torchscript' if s.exporter == 'dynamo' else 'dynamo'}",
        ) from None


def export_onnx(module: nn.Module, s: QatSettings, example: tuple) -> bytes:
    """Export to ONNX bytes with the configured exporter, doc strings stripped (they can carry
    local paths). `s` has its names, axes and opset resolved (`resolve_io`)."""
    import onnx

    module.eval()
    with tempfile.TemporaryDirectory(prefix="quantgate-qat-") as tmp:
        dst = Path(tmp) / "model.onnx"
        _export_file(module, s, example, dst)
        m = onnx.load(str(dst))
    if s.exporter == "dynamo":
        _check_dynamo_graph(m, s)
    m.doc_string = ""
    m.graph.doc_string = ""
    for node in m.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]  # the dynamo exporter can record stack traces (local paths) here
    onnx.checker.check_model(m)
    return m.SerializeToString()


@dataclass(frozen=True)
class Outputs:
    """The files one run writes: the int8 model and, when asked, the conditioned and warm-start
    fp32 exports, the calibration set and the JSON report (each as the caller gave it)."""

    int8: Path
    fp32: Path | str | None = None
    warm_fp32: Path | str | None = None
    calibration: Path | str | None = None
    report: Path | str | None = None

    def check(self, reads: Mapping[str, str | Path | None] | None = None) -> None:
        """Refuse a wrong suffix, a kept export that would overwrite the int8 file, or a report
        that would replace a file the run writes or `reads` (by what it is), before any work."""
        if self.int8.suffix != ".onnx":
            raise UserError(
                "must end in .onnx", subject=f"{param('output')} {self.int8}", fix="name it like model.int8.onnx"
            )
        for flag, p in ((param("keep_fp32"), self.fp32), (param("keep_warm_fp32"), self.warm_fp32)):
            if p is not None and Path(p).suffix != ".onnx":
                raise UserError("must end in .onnx", subject=f"{flag} {p}", fix="name it like model.fp32.onnx")
            if p is not None and Path(p).resolve() == self.int8.resolve():
                raise UserError(
                    f"is the same file as {param('output')}", subject=f"{flag} {p}", fix="pick another path"
                )
        if self.calibration is not None and Path(self.calibration).suffix != ".npz":
            raise UserError(
                "must end in .npz",
                subject=f"{param('keep_calibration')} {self.calibration}",
                fix="name it like cal.npz",
            )
        written = {"int8 output": self.int8, "kept fp32 export": self.fp32, "kept warm-start export": self.warm_fp32}
        refuse_clobber(self.report, param("report_out"), {**written, **(reads or {})})


def static_ptq(
    out: Outputs, fp32_bytes: bytes, warm_bytes: bytes | None, calibration: dict, s: QatSettings, argv: list[str] | None
) -> dict:
    """Write the kept files and the int8 model: static PTQ of the conditioned export, calibrated on
    `calibration`. Returns the PTQ's report."""
    from ..produce.static import quantize_static

    with tempfile.TemporaryDirectory(prefix="quantgate-qat-") as tmp:
        fp32_path = (
            Path(out.fp32) if out.fp32 is not None else Path(tmp) / (out.int8.name.replace(".int8", "") or "model.onnx")
        )
        if fp32_path.suffix != ".onnx":
            fp32_path = Path(tmp) / "model.onnx"
        atomic_write_bytes(fp32_path, fp32_bytes)
        if out.warm_fp32 is not None:
            assert warm_bytes is not None  # the pipeline exports the warm start exactly when it is kept
            atomic_write_bytes(out.warm_fp32, warm_bytes)
        if out.calibration is not None:
            buf = io.BytesIO()
            np.savez(buf, **calibration)
            atomic_write_bytes(out.calibration, buf.getvalue())
        produced = quantize_static(fp32_path, calibration, out.int8, config=ptq_config(s), argv=argv, mode="qat")
    return produced.report
