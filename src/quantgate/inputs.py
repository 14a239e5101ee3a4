"""Deterministic input sets drawn from a model's signature and the entry's `quant_inputs` spec.

Rules (documented in docs/registry.md):
- one `numpy.random.default_rng(seed)` for the whole set; for each sample, each input in the
  model's input order is drawn from it in turn;
- float inputs: `rng.random(shape, dtype=float32)` (uniform [0, 1)), scaled to [low, high) only
  when the spec asks for another range, then cast to the input's dtype (float16, float64);
- integer inputs: `rng.integers(low, high)`; `high` defaults to the row count of the embedding
  table the input indexes (a Gather on an initialiser), else 10; bool inputs: `rng.random() < 0.5`;
- a dimension that is not a fixed positive number takes the spec's `shape`, else its named
  value from `dims`, else 1 (as the first user's reference gate does);
- one sample may hold at most `limits.MAX_INPUT_ELEMENTS` elements (`QUANTGATE_MAX_INPUT_ELEMENTS`),
  in each input and across them all: a larger shape is refused before anything is drawn.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import onnx

from . import limits
from .errors import UserError
from .onnxio import TensorSig
from .rowblocks import InputPlan

DEFAULT_SYMBOLIC_DIM = 1
DEFAULT_INT_HIGH = 10


def _gather_table_rows(model: onnx.ModelProto | None) -> dict[str, int]:
    """Input name -> rows of the initialiser it indexes through Gather (axis 0)."""
    if model is None:
        return {}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    out: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type == "Gather" and len(n.input) == 2 and n.input[0] in inits:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
            dims = inits[n.input[0]]
            if dims and -len(dims) <= axis < len(dims):
                out[n.input[1]] = int(dims[axis])
    return out


def plan_inputs(
    sigs: list[TensorSig], spec: dict | None = None, *, model: onnx.ModelProto | None = None, label: str = "model"
) -> list[InputPlan]:
    spec = spec or {}
    unknown = sorted(set(spec) - {s.name for s in sigs})
    if unknown:
        raise UserError(
            f"quant_inputs names {', '.join(repr(u) for u in unknown)}, which the model does not have",
            subject=label,
            fix=f"its inputs are {', '.join(s.name for s in sigs)}",
        )
    table_rows = _gather_table_rows(model)
    cap = limits.INPUT_ELEMENTS.value()
    total = 0
    plans = []
    for s in sigs:
        sp = spec.get(s.name, {})
        sources: list[str] = []
        shape = _shape(s, sp, label, sources)
        elements = math.prod(shape)
        total += elements
        if elements > cap or total > cap:
            given = "shape" if "shape" in sp else "dims"
            raise UserError(
                f"one sample would draw {elements:,} elements (shape {list(shape)}), "
                f"over the limit of {cap:,} per input"
                if elements > cap
                else f"brings one sample to {total:,} elements across the inputs, over the limit of {cap:,}",
                subject=label,
                field=f"input {s.name!r}",
                fix=f"give a smaller quant_inputs.{s.name}.{given}, or {limits.INPUT_ELEMENTS.fix()}",
            )
        low, high = _value_range(s, sp, table_rows, label, sources)
        plans.append(InputPlan(s.name, str(s.dtype), shape, low, high, ", ".join(sources) or "signature"))
    return plans


def _shape(s: TensorSig, sp: dict, label: str, sources: list[str]) -> tuple[int, ...]:
    """The shape one sample of input `s` is drawn in: the spec's `shape`, or the model's dims
    with the symbolic ones from the spec's `dims` (else `DEFAULT_SYMBOLIC_DIM`)."""
    if "shape" in sp:
        shape = tuple(int(v) for v in sp["shape"])
        if len(shape) != len(s.dims):
            raise UserError(
                f"has {len(shape)} dims, the model's input has {len(s.dims)} ({_fmt_dims(s.dims)})",
                subject=label,
                field=f"quant_inputs.{s.name}.shape",
                fix="give one value per dim",
            )
        bad = [i for i, (d, v) in enumerate(zip(s.dims, shape, strict=False)) if isinstance(d, int) and d != v]
        if bad:
            raise UserError(
                f"{list(shape)} contradicts the model's fixed dims {_fmt_dims(s.dims)}",
                subject=label,
                field=f"quant_inputs.{s.name}.shape",
                fix="match them or leave them out",
            )
        sources.append("spec shape")
        return shape
    named = sp.get("dims", {})
    resolved: list[int] = []
    for d in s.dims:
        if isinstance(d, int):
            resolved.append(d)
        elif isinstance(d, str) and d in named:
            resolved.append(int(named[d]))
            sources.append(f"dims.{d}")
        else:
            resolved.append(DEFAULT_SYMBOLIC_DIM)
    symbolic = [d for d in s.dims if isinstance(d, str)]
    missing_names = sorted(set(named) - set(symbolic))
    if missing_names:
        raise UserError(
            f"names {', '.join(missing_names)}, not symbolic dims of the input ({_fmt_dims(s.dims)})",
            subject=label,
            field=f"quant_inputs.{s.name}.dims",
            fix=f"name only {', '.join(symbolic)}" if symbolic else "leave dims out: the input has no symbolic dim",
        )
    return tuple(resolved)


def _value_range(s: TensorSig, sp: dict, table_rows: dict, label: str, sources: list[str]) -> tuple[float, float]:
    """[low, high) that input `s` is drawn from: the spec's, else [0, 1) for floats and
    [0, rows of the table it indexes or `DEFAULT_INT_HIGH`) for integers; bool draws 0 and 1."""
    kind = s.dtype.kind
    where = f"quant_inputs.{s.name}"
    if kind == "f":
        low, high = float(sp.get("low", 0.0)), float(sp.get("high", 1.0))
    elif kind in "iu":
        default_high = table_rows.get(s.name, DEFAULT_INT_HIGH)
        if s.name in table_rows and "high" not in sp:
            sources.append("embedding rows")
        low, high = float(sp.get("low", 0)), float(sp.get("high", default_high))
        info = np.iinfo(s.dtype)
        if low < info.min or high - 1 > info.max:
            raise UserError(
                f"range [{low}, {high}) does not fit {s.dtype}",
                subject=label,
                field=where,
                fix=f"keep low and high within [{info.min}, {info.max + 1}]",
            )
        if not (low.is_integer() and high.is_integer()):
            raise UserError(
                f"{s.dtype} is drawn as whole numbers in [low, high), "
                f"so low {low:g} / high {high:g} would draw {_whole_range(low, high)}",
                subject=label,
                field=where,
                fix="give whole numbers (e.g. low: 0, high: 2 draws 0 and 1)",
            )
        rows = table_rows.get(s.name)
        if rows is not None and high > rows:
            raise UserError(
                f"high {high:g} is past the {rows:,} rows of the table it "
                f"indexes, so ONNX Runtime would fail on an id out of range",
                subject=label,
                field=where,
                fix=f"set high to at most {rows:,}",
            )
    else:  # bool
        low, high = 0.0, 2.0
    if not high > low:
        raise UserError(
            f"high ({high}) must be greater than low ({low})", subject=label, field=where, fix="raise high or lower low"
        )
    if "low" in sp or "high" in sp:
        sources.append("spec range")
    return low, high


def _whole_range(low: float, high: float) -> str:
    lo, hi = int(low), int(high)
    if hi - lo <= 0:
        return "nothing"
    return f"only {lo}" if hi - lo == 1 else f"{lo} to {hi - 1}"


def _fmt_dims(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def stream(plans: list[InputPlan], seed: int) -> Iterator[dict[str, np.ndarray]]:
    """Feeds one at a time, without end, deterministic for `seed` (see the module docstring for
    the order): the first N are the same whatever N is asked for later."""
    rng = np.random.default_rng(seed)
    while True:
        feed = {}
        for p in plans:
            dt = np.dtype(p.dtype)
            if dt.kind == "f":
                x = rng.random(p.shape, dtype=np.float32)
                if (p.low, p.high) != (0.0, 1.0):
                    x = (np.float32(p.low) + np.float32(p.high - p.low) * x).astype(np.float32)
                feed[p.name] = x if dt == np.float32 else x.astype(dt)
            elif dt.kind in "iu":
                feed[p.name] = rng.integers(int(p.low), int(p.high), size=p.shape, dtype=np.int64).astype(dt)
            else:
                feed[p.name] = np.asarray(rng.random(p.shape) < 0.5)  # a 0-d draw is an array too
        yield feed


def draw(plans: list[InputPlan], samples: int, seed: int) -> list[dict[str, np.ndarray]]:
    """The first `samples` feeds of `stream(plans, seed)`."""
    return list(itertools.islice(stream(plans, seed), samples))


def _listed(sigs: list[TensorSig]) -> str:
    return ", ".join(f"{i.name}:{i.dtype}" for i in sigs)


def check_same_signature(
    ins: list[TensorSig],
    outs: list[TensorSig],
    q_ins: list[TensorSig],
    q_outs: list[TensorSig],
    int8_shown: str | None,
) -> None:
    """The int8 model takes the fp32 model's inputs (names and types, in order) and gives at least
    its outputs: a sidecar made from another model cannot be compared with this one."""
    if [(i.name, i.dtype) for i in ins] != [(i.name, i.dtype) for i in q_ins]:
        raise UserError(
            f"{int8_shown}: its inputs ({_listed(q_ins)}) differ from the fp32 model's ({_listed(ins)})",
            fix="re-produce the sidecar from this model",
        )
    q_out_names = {o.name for o in q_outs}
    missing = [o.name for o in outs if o.name not in q_out_names]
    if missing:
        raise UserError(f"{int8_shown}: lacks output(s) {', '.join(missing)} of the fp32 model", fix="re-produce it")


def judged_outputs(named: list[str] | None, outs: list[TensorSig], label: str) -> set[str]:
    """The outputs a verdict is about: those `named` (quant_gate_outputs), else every output."""
    judged = set(named or [o.name for o in outs])
    unknown = sorted(judged - {o.name for o in outs})
    if unknown:
        raise UserError(
            f"names {', '.join(unknown)}, not outputs of the model",
            subject=label,
            field="quant_gate_outputs",
            fix=f"name some of {', '.join(o.name for o in outs)}",
        )
    return judged


def shape_hint(plans: list[InputPlan]) -> str:
    """What a failing run adds when a symbolic dim was given its default size."""
    if any(p.source == "signature" for p in plans):
        return "; symbolic dims default to 1 — set quant_inputs.<input>.dims or .shape in the registry"
    return ""
