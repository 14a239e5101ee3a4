"""Training for QAT: seeded and deterministic, the train/validation split, the epoch loop shared
by the fp32 warm start and the fake-quant fine-tune, the losses and weight change measured, and
the per-epoch progress lines.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .config import QatSettings
from .data import TrainingData
from .fakequant import calibrate, insert_fake_quant
from .validate import build_model, forward

_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "smooth_l1": F.smooth_l1_loss,
    "huber": F.huber_loss,
}


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


@contextlib.contextmanager
def deterministic(seed: int):
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


@dataclass
class Split:
    """The training data as tensors, split once into training and validation samples."""

    inputs: list
    target: torch.Tensor
    idx_train: torch.Tensor
    idx_val: torch.Tensor
    g: torch.Generator  # the run's generator: drew the split, then shuffles every epoch


def split_data(data: TrainingData, s: QatSettings) -> Split:
    g = torch.Generator().manual_seed(s.seed)
    inputs = [torch.from_numpy(a) for a in data.inputs]
    target = torch.from_numpy(data.target)
    perm = torch.randperm(data.n, generator=g)
    n_val = round(data.n * s.val_fraction)
    n_val = min(n_val, data.n - 1)
    return Split(inputs, target, idx_train=perm[n_val:], idx_val=perm[:n_val], g=g)


def train(
    model,
    split: Split,
    *,
    epochs,
    lr,
    s: QatSettings,
    phase: str,
    progress: Progress,
    qat: bool,
    teacher: torch.Tensor | None = None,
    cal_inputs: list | None = None,
) -> dict:
    base_loss = _LOSSES[s.loss]
    alpha = s.distill if (qat and teacher is not None) else 0.0
    inputs, target, idx_train = split.inputs, split.target, split.idx_train

    def loss_fn(y, b):
        # distill: pull the int8-simulated outputs toward the fp32 warm start's, which is what
        # the gate compares; (1 - distill) of the loss stays on the task target
        task = base_loss(y, target[b]) if alpha < 1 else 0.0
        # alpha > 0 only with a teacher; the second test narrows it for the type checker
        return (1 - alpha) * task + (alpha * base_loss(y, teacher[b]) if alpha > 0 and teacher is not None else 0.0)

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, epochs * math.ceil(len(idx_train) / s.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    last: dict[str, float | None] = {"train_loss": None, "val_loss": None}
    for ep in range(epochs):
        t0 = time.perf_counter()
        if qat:
            assert cal_inputs is not None  # fine_tune, the only QAT caller, passes them
            calibrate(model, cal_inputs)
        model.train()
        order = idx_train[torch.randperm(len(idx_train), generator=split.g)]
        total = 0.0
        for start in range(0, len(order), s.batch_size):
            b = order[start : start + s.batch_size]
            loss = loss_fn(forward(model, [x[b] for x in inputs]), b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        if not math.isfinite(total):
            raise UserError(
                f"the {phase} loss became {total} at epoch {ep + 1}",
                subject=s.source,
                field="qat.lr_qat" if qat else "lr",
                fix="lower the learning rate",
            )
        if qat:
            assert cal_inputs is not None
            calibrate(model, cal_inputs)  # the ranges of the weights just trained, as the PTQ will see them
        train_loss, val_loss = total / len(order), evaluate(model, split, s)
        last = {"train_loss": train_loss, "val_loss": val_loss}
        progress.epoch(phase, ep + 1, epochs, train_loss, val_loss, time.perf_counter() - t0)
    return last


def evaluate(model, split: Split, s: QatSettings) -> float | None:
    """The loss on the validation samples (None when there are none)."""
    idx = split.idx_val
    if len(idx) == 0:
        return None
    model.eval()
    with torch.no_grad():
        y = forward(model, [x[idx] for x in split.inputs])
        return float(_LOSSES[s.loss](y, split.target[idx]))


def weight_change(a: nn.Module, b: nn.Module) -> dict:
    sa, sb = a.state_dict(), b.state_dict()
    diffs = [float((sa[k] - sb[k]).abs().max()) for k in sa if sa[k].is_floating_point()]
    num = sum(float((sa[k] - sb[k]).pow(2).sum()) for k in sa if sa[k].is_floating_point())
    den = sum(float(sa[k].pow(2).sum()) for k in sa if sa[k].is_floating_point())
    return {"max_abs": max(diffs) if diffs else 0.0, "relative_l2": math.sqrt(num / den) if den > 0 else 0.0}


@dataclass
class WarmStart:
    """The fp32 phase: a copy of the warm-start model, its losses, and its outputs on every
    sample when the QAT loss distils toward them."""

    model: nn.Module
    train_loss: float | None
    val_loss: float | None
    teacher: torch.Tensor | None
    seconds: float  # the training alone


def warm_start(
    model: nn.Module, factory: Callable, split: Split, s: QatSettings, epochs: int, progress: Progress
) -> WarmStart:
    """Train `model` in fp32, then keep a frozen copy of it (a fresh instance, so the QAT phase
    can go on changing `model`)."""
    t = time.perf_counter()
    last = train(model, split, epochs=epochs, lr=s.lr, s=s, phase="fp32", progress=progress, qat=False)
    seconds = time.perf_counter() - t
    val = evaluate(model, split, s)
    warm = build_model(factory, s.kwargs, s)
    warm.load_state_dict(model.state_dict())
    warm.eval()
    with torch.no_grad():
        teacher = forward(warm, split.inputs) if s.distill > 0 else None
    return WarmStart(warm, last["train_loss"], val, teacher, seconds)


@dataclass
class FineTune:
    """The QAT phase: the fake-quant model, its losses, and the calibration samples it measured
    its activation ranges on (the final PTQ calibrates on the same ones)."""

    prepared: nn.Module
    train_loss: float | None
    val_loss: float | None
    cal_idx: torch.Tensor
    seconds: float


def fine_tune(
    model: nn.Module, split: Split, s: QatSettings, epochs: int, teacher: torch.Tensor | None, progress: Progress
) -> FineTune:
    """Insert fake quantisation into the warm-started `model` and fine-tune it."""
    t = time.perf_counter()
    idx_train = split.idx_train
    example = tuple(x[idx_train[: min(len(idx_train), s.batch_size)]] for x in split.inputs)
    prepared = insert_fake_quant(model, example, s)
    cal_idx = idx_train[: min(s.n_calibration, len(idx_train))]
    cal_inputs = [x[cal_idx] for x in split.inputs]
    with torch.no_grad():  # weight observers need one training-mode pass, even with 0 epochs
        prepared.train()
        forward(prepared, list(example))
    calibrate(prepared, cal_inputs)
    last = train(
        prepared,
        split,
        epochs=epochs,
        lr=s.effective_lr_qat,
        s=s,
        phase="qat",
        progress=progress,
        qat=True,
        teacher=teacher,
        cal_inputs=cal_inputs,
    )
    val = evaluate(prepared, split, s)
    return FineTune(prepared, last["train_loss"], val, cal_idx, time.perf_counter() - t)
