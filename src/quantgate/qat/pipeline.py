"""The QAT pipeline (needs torch): fp32 warm start -> fake-quant insertion (`prepare_qat_fx`) ->
QAT fine-tune -> QAT-conditioned weights copied into a fresh fp32 module -> ONNX export ->
static PTQ (QDQ) calibrated on samples of the training distribution.

The int8 file has the structure of any static-PTQ sidecar; the QAT effect lives in the weights.
The fake quant mirrors the static PTQ of the last step, so the network is fine-tuned against the
rounding it will meet in ONNX Runtime: per-tensor u8 affine activations whose MinMax ranges are
measured on the PTQ's own calibration set (re-measured every epoch, frozen in between), and
symmetric per-channel weights on ONNX Runtime's 7-bit range (`reduce_range`). Checked: the
fake-quant model and ONNX Runtime's int8 run of the result agree to a drop of about 0.001.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import provenance
from ..errors import UserError
from ..paths import atomic_write_bytes, atomic_write_text
from ..produce.config import QuantConfig
from .config import DataSpec, QatSettings, load_config
from .data import TrainingData, check_counts, import_object, load_file_data

import torch  # noqa: E402  (this module is imported only after the torch check)
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# One source of truth for the int8 scheme: the fake quant during training and the PTQ at the end.
# Weights: int8 symmetric per-channel. With reduce_range (the default) on ONNX Runtime's 7-bit
# range [-64, 64]: u8 x s8 kernels without VNNI (AVX2) sum pairs of products in 16 bits, and
# 8-bit weights overflow it; measured here, that alone moved one model's drop from 0.004 to 0.034.
SCALE_MIN = 2.0 ** -12  # the qnnpack backend config's lower bound on a qint8 scale


def weight_range(reduce_range: bool) -> tuple[int, int]:
    return (-64, 64) if reduce_range else (-127, 127)


def ptq_config(s: QatSettings) -> QuantConfig:
    """The static-PTQ settings matching the fake quant the run trained with."""
    if s.activations == "symmetric":
        # s8 activations: ONNX Runtime cannot fold Relu then and also quantises the pre-ReLU
        # tensor, which the fused torch modules do not model.
        return QuantConfig(per_channel=True, method="minmax", activation_type="qint8", weight_type="qint8",
                           reduce_range=s.reduce_range, extra={"ActivationSymmetric": True, "WeightSymmetric": True})
    # u8 affine activations: ONNX Runtime folds each Relu into the range of the tensor before it,
    # as torch's fused LinearReLU/ConvReLU fake-quantise only after the ReLU.
    return QuantConfig(per_channel=True, method="minmax", activation_type="quint8", weight_type="qint8",
                       reduce_range=s.reduce_range, extra={"WeightSymmetric": True})


_LOSSES = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "smooth_l1": F.smooth_l1_loss,
    "huber": F.huber_loss,
}


@dataclass
class QatResult:
    """What a run produced and measured. Paths are None where nothing was kept."""

    output: Path
    fp32_path: Path | None
    warm_fp32_path: Path | None
    calibration_path: Path | None
    report_path: Path | None
    parameter_count: int
    losses: dict
    seconds: dict
    weight_change: dict
    smoke: bool
    report: dict = field(default_factory=dict)

    @property
    def training_time_ratio(self) -> float | None:
        """QAT total training time / fp32-only training time (None when fp32 did not train)."""
        f, q = self.seconds.get("fp32", 0.0), self.seconds.get("qat", 0.0)
        return (f + q) / f if f > 0 else None


# --------------------------------------------------------------------------- progress


class Progress:
    """One line per epoch. On a terminal it carries a small bar; in a log (no tty) plain lines,
    flushed as written so CI shows them as they happen."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def epoch(self, phase: str, i: int, n: int, loss: float, val: float | None, secs: float) -> None:
        bar = ""
        if self.tty:
            filled = round(20 * i / n)
            bar = "[" + "#" * filled + "." * (20 - filled) + "] "
        v = f"  val {val:.6g}" if val is not None else ""
        self.line(f"qat: {phase:4} {bar}epoch {i:>{len(str(n))}}/{n}  loss {loss:.6g}{v}  {secs:.1f}s")


# --------------------------------------------------------------------------- determinism


@contextlib.contextmanager
def _deterministic(seed: int):
    """Seeded, deterministic algorithms, one thread; restores the caller's settings after."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # reductions over threads change the last bits between machines
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


# --------------------------------------------------------------------------- building blocks


def _build_model(factory: Callable, kwargs: dict, s: QatSettings) -> nn.Module:
    try:
        m = factory(**kwargs)
    except Exception as e:
        raise UserError(f"{s.source}: model.factory: {s.factory}({', '.join(f'{k}=' for k in kwargs)}) "
                        f"raised {type(e).__name__}: {' '.join(str(e).split())[:160]}; fix model.kwargs") from None
    if not isinstance(m, nn.Module):
        raise UserError(f"{s.source}: model.factory: {s.factory} returned {type(m).__name__}, not a "
                        "torch.nn.Module; name an nn.Module class or a function returning one")
    return m


def _load_init(model: nn.Module, s: QatSettings) -> None:
    """Start from the user's trained fp32 weights (a state_dict saved with torch.save)."""
    try:
        state = torch.load(s.init, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{s.source}: model.init: {s.init} is not a loadable state_dict ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]}); save it with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except Exception as e:
        raise UserError(f"{s.source}: model.init: {s.init} does not fit {s.factory} "
                        f"({' '.join(str(e).split())[:200]}); save the weights of the same architecture") from None


def _generated(spec: DataSpec, s: QatSettings) -> TrainingData:
    fn = import_object(spec.generator, s.base_dir, key="data.generator", source=s.source)
    try:
        out = fn(spec.samples, torch.Generator().manual_seed(spec.seed))
    except Exception as e:
        raise UserError(f"{s.source}: data.generator: {spec.generator} raised {type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]}; it is called as fn(samples, torch.Generator)") from None
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise UserError(f"{s.source}: data.generator: {spec.generator} must return (*inputs, target), "
                        f"got {type(out).__name__}")
    arrays = [np.ascontiguousarray(np.asarray(t.detach().cpu() if torch.is_tensor(t) else t, dtype=np.float32))
              for t in out]
    data = TrainingData(arrays[:-1], arrays[-1], f"generator {spec.generator}")
    check_counts(data, s.source)
    return data


def _resolve_io(s: QatSettings, data: TrainingData) -> QatSettings:
    """Fill names, shapes and dynamic axes from the data where the config leaves them out, and
    check the data against what the config says."""
    n_in = len(data.inputs)
    names = s.input_names
    if names is None:
        if s.data.path is not None and all(isinstance(k, str) and k.isidentifier() for k in s.data.inputs):
            names = tuple(s.data.inputs)
        else:
            names = ("input",) if n_in == 1 else tuple(f"input_{i}" for i in range(n_in))
    if len(names) != n_in:
        raise UserError(f"{s.source}: qat.input_names: {len(names)} name(s) but the data has {n_in} input(s); "
                        "give one name per input")
    outs = s.output_names or ("output",)
    if len(outs) != 1:
        raise UserError(f"{s.source}: qat.output_names: {len(outs)} names; QAT trains models with one output")
    axes = s.dynamic_axes
    if axes is None:
        axes = {n: {0: "batch"} for n in (*names, *outs)}
    unknown = sorted(set(axes) - set(names) - set(outs))
    if unknown:
        raise UserError(f"{s.source}: qat.dynamic_axes.{unknown[0]}: names no input or output; "
                        f"use one of {', '.join((*names, *outs))}")
    shapes = s.input_shapes
    if shapes is None:
        shapes = tuple((1, *a.shape[1:]) for a in data.inputs)
    if len(shapes) != n_in:
        raise UserError(f"{s.source}: qat.input_shape: {len(shapes)} shape(s) for {n_in} data input(s); "
                        "give one shape per input")
    for i, (name, shape, arr) in enumerate(zip(names, shapes, data.inputs)):
        per = arr.shape[1:]
        dyn = set(axes.get(name, {}))
        key = s.data.inputs[i] if s.data.path is not None else f"#{i}"
        if len(per) != len(shape) - 1 or any(d != w for j, (d, w) in enumerate(zip(per, shape[1:]), 1) if j not in dyn):
            raise UserError(f"{s.source}: data.inputs[{i}]: '{key}' has per-sample shape {list(per)}, but "
                            f"qat input '{name}' is {list(shape)} (batch first); fix the data or qat.input_shape")
    opset = s.opset if s.opset is not None else (18 if s.exporter == "dynamo" else 17)
    return replace(s, input_names=tuple(names), output_names=tuple(outs), dynamic_axes=axes,
                   input_shapes=tuple(tuple(x) for x in shapes), opset=opset)


def _forward(model: nn.Module, xs: list) -> torch.Tensor:
    return model(*xs)


def _check_forward(model: nn.Module, s: QatSettings, data: TrainingData) -> None:
    xs = [torch.from_numpy(a[:2]) for a in data.inputs]
    model.eval()
    try:
        with torch.no_grad():
            y = _forward(model, xs)
    except Exception as e:
        shapes = ", ".join(str(list(x.shape)) for x in xs)
        raise UserError(f"{s.source}: data: {s.factory} fails on a batch of the data (inputs {shapes}): "
                        f"{type(e).__name__}: {' '.join(str(e).split())[:200]}; match data.inputs to forward()") from None
    if not torch.is_tensor(y):
        raise UserError(f"{s.source}: model.factory: forward() returns {type(y).__name__}; QAT needs one tensor output")
    want = data.target.shape[1:]
    if tuple(y.shape[1:]) != tuple(want) or y.shape[0] != 2:
        raise UserError(f"{s.source}: data.target: per-sample shape {list(want)}, but the model's output per "
                        f"sample is {list(y.shape[1:])}; reshape the target to match the output")


def _qconfig(activations: str, reduce_range: bool):
    from torch.ao.quantization import FakeQuantize, MinMaxObserver, MovingAveragePerChannelMinMaxObserver, QConfig

    # Plain FakeQuantize: the fused default measured no faster on these models, and the prepared
    # model is never exported (the conditioned weights are copied into a fresh module instead).
    # Activations: MinMax over the calibration set, measured by `_calibrate` and then frozen, so
    # training rounds on the very grid ONNX Runtime's MinMax calibration will choose.
    if activations == "symmetric":
        act = FakeQuantize.with_args(observer=MinMaxObserver, quant_min=-127, quant_max=127,
                                     dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, eps=SCALE_MIN)
    else:
        act = FakeQuantize.with_args(observer=MinMaxObserver, quant_min=0, quant_max=255,
                                     dtype=torch.quint8, qscheme=torch.per_tensor_affine, eps=SCALE_MIN)
    # Weights: the scale follows the current weights at every step (averaging constant 1), as
    # the PTQ computes it from the final weights.
    qmin, qmax = weight_range(reduce_range)
    wt = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0,
                                quant_min=qmin, quant_max=qmax, dtype=torch.qint8,
                                qscheme=torch.per_channel_symmetric, ch_axis=0, eps=SCALE_MIN)
    return QConfig(activation=act, weight=wt)


def prepare(model: nn.Module, example: tuple, s: QatSettings) -> nn.Module:
    """Insert fake quantisation with FX. Signed int8 activations need the qnnpack backend
    config: the default (x86/fbgemm) one silently skips them."""
    from torch.ao.quantization import QConfigMapping
    from torch.ao.quantization.backend_config import get_native_backend_config, get_qnnpack_backend_config
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    model.train()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            model = _canonical_relu(model)
            backend = get_qnnpack_backend_config() if s.activations == "symmetric" else get_native_backend_config()
            return prepare_qat_fx(model, QConfigMapping().set_global(_qconfig(s.activations, s.reduce_range)), example,
                                  backend_config=backend)
    except Exception as e:
        raise UserError(f"{s.source}: model.factory: {s.factory} cannot be traced for QAT by torch.fx "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); keep forward() free of "
                        "data-dependent Python control flow") from None


def _canonical_relu(model: nn.Module) -> nn.Module:
    """Rewrite `torch.relu(x)` / `x.relu()` as `F.relu(x)`. FX fuses Linear/Conv with F.relu and
    nn.ReLU only; an unfused ReLU gets a fake-quant on the pre-ReLU tensor that ONNX Runtime (which
    folds the Relu) never applies, and the training then tunes against the wrong rounding."""
    gm = torch.fx.symbolic_trace(model)
    changed = False
    for node in gm.graph.nodes:
        if (node.op == "call_function" and node.target in (torch.relu, torch.relu_)) or \
                (node.op == "call_method" and node.target in ("relu", "relu_")):
            node.op, node.target, changed = "call_function", F.relu, True
    if not changed:
        return model
    gm.graph.lint()
    gm.recompile()
    return gm


def _activation_fqs(model: nn.Module) -> list:
    """The activation fake-quants (not the weights'). `named_modules` yields each module once,
    although FX may register one fake-quant under two names."""
    from torch.ao.quantization import FakeQuantizeBase

    return [m for name, m in model.named_modules()
            if isinstance(m, FakeQuantizeBase) and not name.endswith("weight_fake_quant")]


def _calibrate(model: nn.Module, cal_inputs: list) -> None:
    """Re-measure every activation range on the calibration set (MinMax), then freeze it."""
    fqs = _activation_fqs(model)
    for fq in fqs:
        fq.activation_post_process.reset_min_max_vals()
        fq.enable_observer()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        _forward(model, cal_inputs)
    for fq in fqs:
        fq.disable_observer()
    model.train(was_training)


def copy_conditioned(prepared: nn.Module, fresh: nn.Module, s: QatSettings) -> nn.Module:
    """Load the QAT-conditioned parameters and buffers into a fresh fp32 instance by name.

    FX keeps the user's module paths; fused modules (LinearReLU, ConvReLU2d) keep `weight` and
    `bias` on the fused module itself, so every name of the fresh module is found as it is.
    """
    src = {k: v for k, v in prepared.state_dict().items()
           if "fake_quant" not in k and "activation_post_process" not in k}
    dst = fresh.state_dict()
    missing = [k for k in dst if k not in src or tuple(src[k].shape) != tuple(dst[k].shape)]
    if missing:
        raise UserError(f"{s.source}: model.factory: cannot map the QAT weights back onto {s.factory} "
                        f"({', '.join(missing[:4])} not found; batch norm folding is not supported); "
                        "remove BatchNorm or fold it before QAT")
    fresh.load_state_dict({k: src[k].detach().clone() for k in dst})
    fresh.eval()
    return fresh


# torch.onnx's dynamo path logs through these (opset fallback, torchvision ops it skips, the
# version converter); the run's own progress lines stay the only output.
_EXPORT_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx",
                   "onnxscript", "onnx_ir")


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
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_dynamo(module: nn.Module, s: QatSettings, example: tuple, dst: Path) -> None:
    """`torch.onnx.export(dynamo=True)`: torch.export traces the module, torchlib (onnxscript)
    translates the ATen graph, onnxscript's optimizer folds constants.

    The config's dynamic_axes become `dynamic_shapes` (one {axis: label} per forward() argument;
    torch makes each a Dim.DYNAMIC and names the ONNX dimension after the label). torch.export
    specialises an axis whose example size is 1 (0/1 specialisation), so such an axis is
    exported with an example of size 2.
    """
    try:
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise UserError(f"{s.source}: qat.exporter: 'dynamo' needs onnxscript ({e}); "
                        "pip install 'quantgate[qat]', or use exporter: torchscript") from None
    axes = s.dynamic_axes or {}
    shapes = tuple({int(a): str(lbl) for a, lbl in axes[n].items()} if axes.get(n) else None
                   for n in s.input_names)
    example = tuple(x.new_zeros([2 if (j in (shapes[i] or {}) and d == 1) else d for j, d in enumerate(x.shape)])
                    for i, x in enumerate(example))
    torch.onnx.export(module, example, str(dst), input_names=list(s.input_names),
                      output_names=list(s.output_names),
                      dynamic_shapes=shapes if any(x is not None for x in shapes) else None,
                      opset_version=s.opset, dynamo=True, external_data=False, optimize=True, verbose=False)


def _check_dynamo_graph(m, s: QatSettings) -> None:
    """What the dynamo exporter may do differently from what the config asked, fixed or refused."""
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != s.opset:
        raise UserError(f"{s.source}: qat.opset: the dynamo exporter wrote opset {opset}, not {s.opset} (its "
                        f"version converter could not go below 18 for this model); set opset: 18 or use "
                        "exporter: torchscript")
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for axis, label in (s.dynamic_axes or {}).get(vi.name, {}).items():
            axis = int(axis)
            if axis >= len(dims) or not dims[axis].dim_param:
                got = dims[axis].dim_value if axis < len(dims) else "absent"
                raise UserError(f"{s.source}: qat.dynamic_axes.{vi.name}: the dynamo exporter fixed axis {axis} "
                                f"to {got} (torch.export found it static in forward()); drop that axis or use "
                                "exporter: torchscript")
            # outputs are named after the input's symbol (batch, or s0 for an expression): use the config's label
            dims[axis].dim_param = str(label)
    # shapes recorded for initialisers only shadow them (and a stale one breaks quantize_static)
    inits = {i.name for i in m.graph.initializer}
    keep = [vi for vi in m.graph.value_info if vi.name not in inits]
    del m.graph.value_info[:]
    m.graph.value_info.extend(keep)


def export_onnx(module: nn.Module, s: QatSettings, example: tuple) -> bytes:
    """Export to ONNX bytes with the configured exporter, doc strings stripped (they can carry
    local paths). `s` has its names, axes and opset resolved (`_resolve_io`)."""
    import onnx

    module.eval()
    with tempfile.TemporaryDirectory(prefix="quantgate-qat-") as tmp:
        dst = Path(tmp) / "model.onnx"
        try:
            with _quiet_export():
                if s.exporter == "dynamo":
                    _export_dynamo(module, s, example, dst)
                else:
                    torch.onnx.export(module, example, str(dst), input_names=list(s.input_names),
                                      output_names=list(s.output_names), dynamic_axes=s.dynamic_axes or None,
                                      opset_version=s.opset, dynamo=False, do_constant_folding=True)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{s.source}: qat.exporter: the {s.exporter} ONNX export failed ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]}); try exporter: "
                            f"{'torchscript' if s.exporter == 'dynamo' else 'dynamo'}") from None
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


def _train(model, inputs, target, idx_train, idx_val, *, epochs, lr, s: QatSettings, phase: str,
           g: torch.Generator, progress: Progress, qat: bool, teacher: torch.Tensor | None = None,
           cal_inputs: list | None = None) -> dict:
    base_loss = _LOSSES[s.loss]
    alpha = s.distill if (qat and teacher is not None) else 0.0

    def loss_fn(y, b):
        # distill: pull the int8-simulated outputs toward the fp32 warm start's, which is what
        # the gate compares; (1 - distill) of the loss stays on the task target
        task = base_loss(y, target[b]) if alpha < 1 else 0.0
        return (1 - alpha) * task + (alpha * base_loss(y, teacher[b]) if alpha > 0 else 0.0)

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, epochs * math.ceil(len(idx_train) / s.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    last = {"train_loss": None, "val_loss": None}
    for ep in range(epochs):
        t0 = time.perf_counter()
        if qat:
            _calibrate(model, cal_inputs)
        model.train()
        order = idx_train[torch.randperm(len(idx_train), generator=g)]
        total = 0.0
        for start in range(0, len(order), s.batch_size):
            b = order[start:start + s.batch_size]
            loss = loss_fn(_forward(model, [x[b] for x in inputs]), b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        if not math.isfinite(total):
            raise UserError(f"{s.source}: {'qat.lr_qat' if qat else 'lr'}: the {phase} loss became {total} at epoch "
                            f"{ep + 1}; lower the learning rate")
        if qat:
            _calibrate(model, cal_inputs)  # the ranges of the weights just trained, as the PTQ will see them
        last = {"train_loss": total / len(order), "val_loss": _evaluate(model, inputs, target, idx_val, s)}
        progress.epoch(phase, ep + 1, epochs, last["train_loss"], last["val_loss"], time.perf_counter() - t0)
    return last


def _evaluate(model, inputs, target, idx, s: QatSettings) -> float | None:
    if len(idx) == 0:
        return None
    model.eval()
    with torch.no_grad():
        y = _forward(model, [x[idx] for x in inputs])
        return float(_LOSSES[s.loss](y, target[idx]))


def _weight_change(a: nn.Module, b: nn.Module) -> dict:
    sa, sb = a.state_dict(), b.state_dict()
    diffs = [float((sa[k] - sb[k]).abs().max()) for k in sa if sa[k].is_floating_point()]
    num = sum(float((sa[k] - sb[k]).pow(2).sum()) for k in sa if sa[k].is_floating_point())
    den = sum(float(sa[k].pow(2).sum()) for k in sa if sa[k].is_floating_point())
    return {"max_abs": max(diffs) if diffs else 0.0,
            "relative_l2": math.sqrt(num / den) if den > 0 else 0.0}


# --------------------------------------------------------------------------- the run


def run(s: QatSettings, output: Path, *, smoke: bool = False, keep_fp32: Path | None = None,
        keep_warm_fp32: Path | None = None, keep_calibration: Path | None = None,
        report_out: Path | None = None, progress: Progress | None = None, argv: list[str] | None = None,
        factory: Callable | None = None, data: TrainingData | None = None) -> QatResult:
    from ..produce.static import quantize_static

    progress = progress or Progress(enabled=False)
    output = Path(output)
    if output.suffix != ".onnx":
        raise UserError(f"--output {output}: must end in .onnx (e.g. model.int8.onnx)")
    for flag, p in (("--keep-fp32", keep_fp32), ("--keep-warm-fp32", keep_warm_fp32)):
        if p is not None and Path(p).suffix != ".onnx":
            raise UserError(f"{flag} {p}: must end in .onnx")
        if p is not None and Path(p).resolve() == output.resolve():
            raise UserError(f"{flag} {p}: is the same file as --output; pick another path")
    if keep_calibration is not None and Path(keep_calibration).suffix != ".npz":
        raise UserError(f"--keep-calibration {keep_calibration}: must end in .npz")
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    # ---- validate everything before training
    t = time.perf_counter()
    factory = factory or import_object(s.factory, s.base_dir, key="model.factory", source=s.source)
    if data is None:
        data = _generated(s.data, s) if s.data.generator else load_file_data(s.data, s.source)
    s = _resolve_io(s, data)
    with _deterministic(s.seed):
        model = _build_model(factory, s.kwargs, s)
        if s.init is not None:
            _load_init(model, s)
        _check_forward(model, s, data)
        n_params = sum(p.numel() for p in model.parameters())
        seconds["validate"] = time.perf_counter() - t

        g = torch.Generator().manual_seed(s.seed)
        inputs = [torch.from_numpy(a) for a in data.inputs]
        target = torch.from_numpy(data.target)
        perm = torch.randperm(data.n, generator=g)
        n_val = int(round(data.n * s.val_fraction))
        n_val = min(n_val, data.n - 1)
        idx_val, idx_train = perm[:n_val], perm[n_val:]
        ep_fp32 = 0 if smoke else s.epochs_fp32
        ep_qat = 0 if smoke else s.epochs_qat
        progress.line(f"qat: {s.factory}: {n_params} parameters, {len(idx_train)} training / {n_val} validation "
                      f"samples{' (smoke: no training)' if smoke else ''}")

        # ---- 1. fp32 warm start
        t = time.perf_counter()
        fp32_last = _train(model, inputs, target, idx_train, idx_val, epochs=ep_fp32, lr=s.lr, s=s,
                           phase="fp32", g=g, progress=progress, qat=False)
        seconds["fp32"] = time.perf_counter() - t
        warm_val = _evaluate(model, inputs, target, idx_val, s)
        warm = _build_model(factory, s.kwargs, s)
        warm.load_state_dict(model.state_dict())
        warm.eval()
        with torch.no_grad():
            teacher = _forward(warm, inputs) if s.distill > 0 else None

        # ---- 2. fake-quant insertion, 3. QAT fine-tune
        t = time.perf_counter()
        example = tuple(x[idx_train[: min(len(idx_train), s.batch_size)]] for x in inputs)
        prepared = prepare(model, example, s)
        cal_idx = idx_train[: min(s.n_calibration, len(idx_train))]
        cal_inputs = [x[cal_idx] for x in inputs]
        with torch.no_grad():  # weight observers need one training-mode pass, even with 0 epochs
            prepared.train()
            _forward(prepared, list(example))
        _calibrate(prepared, cal_inputs)
        qat_last = _train(prepared, inputs, target, idx_train, idx_val, epochs=ep_qat, lr=s.effective_lr_qat, s=s,
                          phase="qat", g=g, progress=progress, qat=True, teacher=teacher, cal_inputs=cal_inputs)
        qat_val = _evaluate(prepared, inputs, target, idx_val, s)
        seconds["qat"] = time.perf_counter() - t

        # ---- 4. fresh fp32 module with the conditioned weights -> ONNX -> static PTQ
        t = time.perf_counter()
        conditioned = copy_conditioned(prepared, _build_model(factory, s.kwargs, s), s)
        cond_val = _evaluate(conditioned, inputs, target, idx_val, s)
        change = _weight_change(conditioned, warm)
        dummy = tuple(torch.zeros(shape) for shape in s.input_shapes)
        fp32_bytes = export_onnx(conditioned, s, dummy)
        warm_bytes = export_onnx(warm, s, dummy) if keep_warm_fp32 is not None else None
        seconds["export"] = time.perf_counter() - t

        calibration = {name: a[cal_idx.numpy()] for name, a in zip(s.input_names, data.inputs)}
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quantgate-qat-") as tmp:
        fp32_path = Path(keep_fp32) if keep_fp32 is not None else Path(tmp) / (output.name.replace(".int8", "") or "model.onnx")
        if fp32_path.suffix != ".onnx":
            fp32_path = Path(tmp) / "model.onnx"
        atomic_write_bytes(fp32_path, fp32_bytes)
        if keep_warm_fp32 is not None:
            atomic_write_bytes(keep_warm_fp32, warm_bytes)
        if keep_calibration is not None:
            buf = io.BytesIO()
            np.savez(buf, **calibration)
            atomic_write_bytes(keep_calibration, buf.getvalue())
        produced = quantize_static(fp32_path, calibration, output, config=ptq_config(s), argv=argv)
    seconds["ptq"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started
    seconds = {k: round(v, 3) for k, v in seconds.items()}

    losses = {"loss": s.loss,
              "fp32_train": fp32_last["train_loss"], "fp32_val": warm_val,
              "qat_train": qat_last["train_loss"], "qat_val_fake_quant": qat_val,
              "conditioned_fp32_val": cond_val}
    result = QatResult(output=output, fp32_path=Path(keep_fp32) if keep_fp32 else None,
                       warm_fp32_path=Path(keep_warm_fp32) if keep_warm_fp32 else None,
                       calibration_path=Path(keep_calibration) if keep_calibration else None,
                       report_path=Path(report_out) if report_out else None, parameter_count=n_params,
                       losses=losses, seconds=seconds, weight_change=change, smoke=smoke)
    ptq = dict(produced.report)
    ptq.pop("run_provenance", None)
    ptq.pop("model", None)
    inputs_prov = {}
    if s.source != "run_qat" and Path(s.source).is_file():
        inputs_prov["config"] = Path(s.source)
    if s.data.path is not None:
        inputs_prov["data"] = s.data.path
    result.report = {
        "schema_version": 1,
        "kind": "qat",
        "smoke": smoke,
        "model": {"factory": s.factory, "kwargs": s.kwargs, "init": str(s.init) if s.init else None,
                  "parameter_count": n_params},
        "outputs": {"int8": str(output), "fp32_conditioned": str(keep_fp32) if keep_fp32 else None,
                    "fp32_warm": str(keep_warm_fp32) if keep_warm_fp32 else None,
                    "calibration": str(keep_calibration) if keep_calibration else None},
        "data": {"source": data.source, "samples": data.n, "train": int(len(idx_train)), "val": int(n_val)},
        "phases": {
            "fp32": {"epochs": ep_fp32, "lr": s.lr, "batch_size": s.batch_size, "optimizer": "adam",
                     "schedule": "cosine", "wall_seconds": seconds["fp32"]},
            "qat": {"epochs": ep_qat, "lr": s.effective_lr_qat, "batch_size": s.batch_size, "distill": s.distill,
                    "fake_quant": {"activations": ("int8 symmetric per-tensor [-127, 127]" if s.activations == "symmetric"
                                                   else "uint8 affine per-tensor [0, 255]"),
                                   "weights": "int8 symmetric per-channel [{}, {}]".format(*weight_range(s.reduce_range)),
                                   "backend_config": "qnnpack" if s.activations == "symmetric" else "native"},
                    "wall_seconds": seconds["qat"]},
            "export": {"exporter": s.exporter, "opset": s.opset, "input_names": list(s.input_names),
                       "input_shapes": [list(x) for x in s.input_shapes], "output_names": list(s.output_names),
                       "dynamic_axes": {k: {str(a): v for a, v in d.items()} for k, d in (s.dynamic_axes or {}).items()},
                       "wall_seconds": seconds["export"]},
            "ptq": {"n_calibration": int(len(cal_idx)), **ptq, "wall_seconds": seconds["ptq"]},
        },
        "seed": s.seed,
        "losses": losses,
        "weight_change": change,
        "wall_seconds": seconds,
        "training_time_ratio": result.training_time_ratio,
        "settings": s.to_json(),
        "run_provenance": provenance.build(inputs=inputs_prov, root=None, argv=argv,
                                           extra_versions={"torch": torch.__version__}),
    }
    if report_out is not None:
        atomic_write_text(report_out, json.dumps(result.report, indent=2, default=str) + "\n")
    return result


def run_qat(model=None, data=None, output=None, *, config=None, kwargs: dict | None = None,
            smoke: bool = False, keep_fp32=None, keep_warm_fp32=None, keep_calibration=None,
            report_out=None, progress: bool | Progress = False, argv=None, **settings) -> QatResult:
    """Run the QAT pipeline from Python.

    model: an nn.Module class, a factory function, or 'FILE.py:NAME' / 'module:NAME';
    data: (inputs, target) with inputs one array or a list of arrays, each [N, ...];
    config: a QAT YAML file instead of (or as the base for) model/data; `settings` are
    QatSettings fields (loss, lr, batch_size, seed, epochs_fp32, epochs_qat, lr_qat, input_names,
    input_shapes, output_names, dynamic_axes, opset, exporter, n_calibration, val_fraction).
    """
    if output is None:
        raise UserError("run_qat: output: missing; pass output='model.int8.onnx'")
    factory = None
    tdata = None
    if config is not None:
        s = load_config(config)
    else:
        if model is None or data is None:
            raise UserError("run_qat: give model and data, or config='qat.yaml'")
        s = QatSettings(factory=model if isinstance(model, str) else getattr(model, "__qualname__", "model"),
                        data=DataSpec())
    if model is not None and not isinstance(model, str):
        factory = model
        s = replace(s, factory=getattr(model, "__qualname__", repr(model)))
    elif isinstance(model, str):
        s = replace(s, factory=model)
    if kwargs is not None:
        s = replace(s, kwargs=dict(kwargs))
    if data is not None:
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise UserError("run_qat: data: expected (inputs, target) with arrays [N, ...]")
        ins, tgt = data
        ins = list(ins) if isinstance(ins, (list, tuple)) else [ins]
        to_np = (lambda a: np.ascontiguousarray(a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a),
                                                dtype=np.float32))
        tdata = TrainingData([to_np(a) for a in ins], to_np(tgt), "arrays")
        check_counts(tdata, "run_qat")
        s = replace(s, data=DataSpec())
    unknown = sorted(set(settings) - set(QatSettings.__dataclass_fields__) - {"factory", "data", "source", "base_dir"})
    if unknown:
        raise UserError(f"run_qat: unknown setting(s) {', '.join(unknown)}; see QatSettings")
    for k in ("input_names", "output_names"):
        if isinstance(settings.get(k), (list, str)):
            v = settings[k]
            settings[k] = (v,) if isinstance(v, str) else tuple(v)
    if settings.get("input_shapes") is not None:
        settings["input_shapes"] = tuple(tuple(x) for x in settings["input_shapes"])
    s = s.with_overrides(**settings)
    if isinstance(progress, bool):
        progress = Progress(enabled=progress)
    return run(s, Path(output), smoke=smoke, keep_fp32=Path(keep_fp32) if keep_fp32 else None,
               keep_warm_fp32=Path(keep_warm_fp32) if keep_warm_fp32 else None,
               keep_calibration=Path(keep_calibration) if keep_calibration else None,
               report_out=Path(report_out) if report_out else None, progress=progress, argv=argv,
               factory=factory, data=tdata)
