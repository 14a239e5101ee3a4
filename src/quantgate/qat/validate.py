"""Everything a QAT run checks before it trains: the model factory builds an nn.Module, the init
weights fit it, the data loads, and the model runs on a batch of it. Where the config leaves them
out, the export's names, shapes and dynamic axes are taken from the data, the opset from the
exporter.

`forward` is the one way the pipeline calls a model: the inputs positionally, one per argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from ..errors import UserError, one_line
from .config import DataSpec, QatSettings
from .data import TrainingData, check_counts, import_object, load_file_data


def forward(model: nn.Module, xs: list) -> torch.Tensor:
    return model(*xs)


def build_model(factory: Callable, kwargs: dict, s: QatSettings) -> nn.Module:
    try:
        m = factory(**kwargs)
    except Exception as e:
        raise UserError(
            f"{s.factory}({', '.join(f'{k}=' for k in kwargs)}) raised {type(e).__name__}: {one_line(e, 160)}",
            subject=s.source,
            field="model.factory",
            fix="fix model.kwargs",
        ) from None
    if not isinstance(m, nn.Module):
        raise UserError(
            f"{s.factory} returned {type(m).__name__}, not a torch.nn.Module",
            subject=s.source,
            field="model.factory",
            fix="name an nn.Module class or a function returning one",
        )
    return m


def load_init(model: nn.Module, s: QatSettings) -> None:
    """Start from the user's trained fp32 weights (a state_dict saved with torch.save)."""
    assert s.init is not None  # checked_model calls this only when init is given
    try:
        state = torch.load(s.init, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(
            f"{s.init} is not a loadable state_dict ({type(e).__name__}: {one_line(e, 160)})",
            subject=s.source,
            field="model.init",
            fix="save it with torch.save(model.state_dict(), path)",
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except Exception as e:
        raise UserError(
            f"{s.init} does not fit {s.factory} ({one_line(e, 200)})",
            subject=s.source,
            field="model.init",
            fix="save the weights of the same architecture",
        ) from None


def generated(spec: DataSpec, s: QatSettings) -> TrainingData:
    assert spec.generator is not None  # load_inputs calls this only for a generator spec
    fn = import_object(spec.generator, s.base_dir, key="data.generator", source=s.source)
    try:
        out = fn(spec.samples, torch.Generator().manual_seed(spec.seed))
    except Exception as e:
        raise UserError(
            f"{spec.generator} raised {type(e).__name__}: {one_line(e, 160)}",
            subject=s.source,
            field="data.generator",
            fix="it is called as fn(samples, torch.Generator)",
        ) from None
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise UserError(
            f"{spec.generator} returned {type(out).__name__}",
            subject=s.source,
            field="data.generator",
            fix="return (*inputs, target)",
        )
    arrays = [
        np.ascontiguousarray(np.asarray(t.detach().cpu() if torch.is_tensor(t) else t, dtype=np.float32)) for t in out
    ]
    data = TrainingData(arrays[:-1], arrays[-1], f"generator {spec.generator}")
    check_counts(data, s.source)
    return data


def load_inputs(
    s: QatSettings, factory: Callable | None, data: TrainingData | None
) -> tuple[Callable, TrainingData, QatSettings]:
    """The model factory and the training data (the caller's, or the config's), and the settings
    with the export's names and shapes resolved against that data."""
    factory = factory or import_object(s.factory, s.base_dir, key="model.factory", source=s.source)
    if data is None:
        data = generated(s.data, s) if s.data.generator else load_file_data(s.data, s.source)
    return factory, data, resolve_io(s, data)


def resolve_io(s: QatSettings, data: TrainingData) -> QatSettings:
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
        raise UserError(
            f"{len(names)} name(s) but the data has {n_in} input(s)",
            subject=s.source,
            field="qat.input_names",
            fix="give one name per input",
        )
    outs = s.output_names or ("output",)
    if len(outs) != 1:
        raise UserError(
            f"{len(outs)} names, QAT trains models with one output",
            subject=s.source,
            field="qat.output_names",
            fix="give one name",
        )
    axes = s.dynamic_axes
    if axes is None:
        axes = {n: {0: "batch"} for n in (*names, *outs)}
    unknown = sorted(set(axes) - set(names) - set(outs))
    if unknown:
        raise UserError(
            "names no input or output",
            subject=s.source,
            field=f"qat.dynamic_axes.{unknown[0]}",
            fix=f"use one of {', '.join((*names, *outs))}",
        )
    shapes = s.input_shapes
    if shapes is None:
        shapes = tuple((1, *a.shape[1:]) for a in data.inputs)
    if len(shapes) != n_in:
        raise UserError(
            f"{len(shapes)} shape(s) for {n_in} data input(s)",
            subject=s.source,
            field="qat.input_shape",
            fix="give one shape per input",
        )
    _check_shapes(s, data, names, shapes, axes)
    opset = s.opset if s.opset is not None else (18 if s.exporter == "dynamo" else 17)
    return replace(
        s,
        input_names=tuple(names),
        output_names=tuple(outs),
        dynamic_axes=axes,
        input_shapes=tuple(tuple(x) for x in shapes),
        opset=opset,
    )


def _check_shapes(s: QatSettings, data: TrainingData, names: tuple, shapes: tuple, axes: dict) -> None:
    """Each data input's per-sample shape against the export's input shape, dynamic axes aside."""
    for i, (name, shape, arr) in enumerate(zip(names, shapes, data.inputs, strict=False)):
        per = arr.shape[1:]
        dyn = set(axes.get(name, {}))
        key = s.data.inputs[i] if s.data.path is not None else f"#{i}"
        if len(per) != len(shape) - 1 or any(
            d != w for j, (d, w) in enumerate(zip(per, shape[1:], strict=False), 1) if j not in dyn
        ):
            raise UserError(
                f"'{key}' has per-sample shape {list(per)}, but qat input '{name}' is {list(shape)} (batch first)",
                subject=s.source,
                field=f"data.inputs[{i}]",
                fix="fix the data or qat.input_shape",
            )


def check_forward(model: nn.Module, s: QatSettings, data: TrainingData) -> None:
    xs = [torch.from_numpy(a[:2]) for a in data.inputs]
    model.eval()
    try:
        with torch.no_grad():
            y = forward(model, xs)
    except Exception as e:
        shapes = ", ".join(str(list(x.shape)) for x in xs)
        raise UserError(
            f"{s.factory} fails on a batch of the data (inputs {shapes}): {type(e).__name__}: {one_line(e, 200)}",
            subject=s.source,
            field="data",
            fix="match data.inputs to forward()",
        ) from None
    if not torch.is_tensor(y):
        raise UserError(
            f"forward() returns {type(y).__name__}, QAT needs one tensor output",
            subject=s.source,
            field="model.factory",
            fix="return one tensor from forward()",
        )
    want = data.target.shape[1:]
    if tuple(y.shape[1:]) != tuple(want) or y.shape[0] != 2:
        raise UserError(
            f"per-sample shape {list(want)}, but the model's output per sample is {list(y.shape[1:])}",
            subject=s.source,
            field="data.target",
            fix="reshape the target to match the output",
        )


def checked_model(factory: Callable, s: QatSettings, data: TrainingData) -> nn.Module:
    """The model built (from the init weights when given) and run once on the data."""
    model = build_model(factory, s.kwargs, s)
    if s.init is not None:
        load_init(model, s)
    check_forward(model, s, data)
    return model
