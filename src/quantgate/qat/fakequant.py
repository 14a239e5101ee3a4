"""Fake quantisation for QAT: the qconfig that mirrors the final static PTQ, its insertion with
torch.fx (`insert_fake_quant`), the activation ranges measured on the calibration set (`calibrate`), and
the conditioned weights copied back into a plain fp32 module (`copy_conditioned`).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError, one_line
from .config import QatSettings
from .export import weight_range
from .validate import forward

SCALE_MIN = 2.0**-12  # the qnnpack backend config's lower bound on a qint8 scale


def _qconfig(activations: str, reduce_range: bool):
    from torch.ao.quantization import (
        FakeQuantize,
        MinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
        QConfig,
    )

    # Plain FakeQuantize: the fused default measured no faster on these models, and the prepared
    # model is never exported (the conditioned weights are copied into a fresh module instead).
    # Activations: MinMax over the calibration set, measured by `calibrate` and then frozen, so
    # training rounds on the very grid ONNX Runtime's MinMax calibration will choose.
    if activations == "symmetric":
        act = FakeQuantize.with_args(
            observer=MinMaxObserver,
            quant_min=-127,
            quant_max=127,
            dtype=torch.qint8,
            qscheme=torch.per_tensor_symmetric,
            eps=SCALE_MIN,
        )
    else:
        act = FakeQuantize.with_args(
            observer=MinMaxObserver,
            quant_min=0,
            quant_max=255,
            dtype=torch.quint8,
            qscheme=torch.per_tensor_affine,
            eps=SCALE_MIN,
        )
    # Weights: the scale follows the current weights at every step (averaging constant 1), as
    # the PTQ computes it from the final weights.
    qmin, qmax = weight_range(reduce_range)
    wt = FakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver,
        averaging_constant=1.0,
        quant_min=qmin,
        quant_max=qmax,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
        eps=SCALE_MIN,
    )
    return QConfig(activation=act, weight=wt)


def insert_fake_quant(model: nn.Module, example: tuple, s: QatSettings) -> nn.Module:
    """Insert fake quantisation with FX. Signed int8 activations need the qnnpack backend
    config: the default (x86/fbgemm) one silently skips them."""
    from torch.ao.quantization import QConfigMapping
    from torch.ao.quantization.backend_config import (
        get_native_backend_config,
        get_qnnpack_backend_config,
    )
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    model.train()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            model = _canonical_relu(model)
            backend = get_qnnpack_backend_config() if s.activations == "symmetric" else get_native_backend_config()
            return prepare_qat_fx(
                model,
                QConfigMapping().set_global(_qconfig(s.activations, s.reduce_range)),
                example,
                backend_config=backend,
            )
    except Exception as e:
        raise UserError(
            f"{s.factory} cannot be traced for QAT by torch.fx ({type(e).__name__}: {one_line(e, 200)})",
            subject=s.source,
            field="model.factory",
            fix="keep forward() free of data-dependent Python control flow",
        ) from None


def _canonical_relu(model: nn.Module) -> nn.Module:
    """Rewrite `torch.relu(x)` / `x.relu()` as `F.relu(x)`. FX fuses Linear/Conv with F.relu and
    nn.ReLU only; an unfused ReLU gets a fake-quant on the pre-ReLU tensor that ONNX Runtime (which
    folds the Relu) never applies, and the training then tunes against the wrong rounding."""
    gm = torch.fx.symbolic_trace(model)
    changed = False
    for node in gm.graph.nodes:
        if (node.op == "call_function" and node.target in (torch.relu, torch.relu_)) or (
            node.op == "call_method" and node.target in ("relu", "relu_")
        ):
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

    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, FakeQuantizeBase) and not name.endswith("weight_fake_quant")
    ]


def calibrate(model: nn.Module, cal_inputs: list) -> None:
    """Re-measure every activation range on the calibration set (MinMax), then freeze it."""
    fqs = _activation_fqs(model)
    for fq in fqs:
        fq.activation_post_process.reset_min_max_vals()
        fq.enable_observer()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        forward(model, cal_inputs)
    for fq in fqs:
        fq.disable_observer()
    model.train(was_training)


def copy_conditioned(prepared: nn.Module, fresh: nn.Module, s: QatSettings) -> nn.Module:
    """Load the QAT-conditioned parameters and buffers into a fresh fp32 instance by name.

    FX keeps the user's module paths; fused modules (LinearReLU, ConvReLU2d) keep `weight` and
    `bias` on the fused module itself, so every name of the fresh module is found as it is.
    """
    src = {
        k: v for k, v in prepared.state_dict().items() if "fake_quant" not in k and "activation_post_process" not in k
    }
    dst = fresh.state_dict()
    missing = [k for k in dst if k not in src or tuple(src[k].shape) != tuple(dst[k].shape)]
    if missing:
        raise UserError(
            f"cannot map the QAT weights back onto {s.factory} "
            f"({', '.join(missing[:4])} not found; batch norm folding is not supported)",
            subject=s.source,
            field="model.factory",
            fix="remove BatchNorm or fold it before QAT",
        )
    fresh.load_state_dict({k: src[k].detach().clone() for k in dst})
    fresh.eval()
    return fresh
