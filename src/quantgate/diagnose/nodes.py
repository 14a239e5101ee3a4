"""Error at each node's output, the cheap measure (no re-quantisation): both models run with
every intermediate tensor exposed, int8 compared with fp32 at each weight node's input and
output; the rise of the normalised error from input to output is the error the node adds there.
It gives the gate's "why" of a failing row and picks which nodes to re-make in float first on
large models."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from .. import coverage
from ..onnxio import load_model, session

# Intermediate tensors are compared on this many samples (they can be large).
ACTIVATION_SAMPLES = 16
_FLOAT = onnx.TensorProto.FLOAT


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Float tensors the graph computes (node outputs), by shape inference where it can say."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
        types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    except Exception:  # inference is a hint here: without it every node output is tried
        types = {}
    out = set()
    for n in model.graph.node:
        if n.op_type == "Constant":
            continue
        for o in n.output:
            if o and types.get(o, _FLOAT) == _FLOAT:
                out.add(o)
    return out


def _dequantized(model: onnx.ModelProto) -> dict[str, str]:
    """tensor -> the output of the DequantizeLinear that follows its QuantizeLinear."""
    q_in = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.output}
    out: dict[str, str] = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input and n.input[0] in q_in and n.output:
            out.setdefault(q_in[n.input[0]], n.output[0])
    return out


def _exposed(model: onnx.ModelProto, names: set[str]) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in sorted(names - have):
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return m.SerializeToString()


def _activations(model: onnx.ModelProto, names: set[str], feeds: list[dict]) -> dict[str, list[np.ndarray]]:
    s = session(_exposed(model, names), label="model with its intermediate tensors exposed")
    wanted = [o.name for o in s.get_outputs() if o.name in names]
    values: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    for f in feeds:
        for n, v in zip(wanted, s.run(wanted, f), strict=True):
            values[n].append(np.asarray(v, dtype=np.float64).ravel())
    return values


def _errors(f: list[np.ndarray], q: list[np.ndarray]) -> tuple[float | None, float | None]:
    """(normalised error: MSE over the fp32 variance, SQNR in dB: fp32 power over error power, as
    the gate defines it) of one tensor; None where undefined."""
    a, b = np.concatenate(f), np.concatenate(q)
    if a.size != b.size or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None, None
    err = float(((b - a) ** 2).sum())
    var = float(((a - a.mean()) ** 2).sum())
    power = float((a * a).sum())
    nmse = err / var if var > 0.0 else None
    sqnr = 10.0 * math.log10(power / err) if err > 0.0 and power > 0.0 else None
    return nmse, sqnr


def _walk(start: str, step: Callable[[str], str | None], common: set[str], limit: int = 4) -> str | None:
    """`start`, or the first tensor in `common` reached by `step` from it (within `limit` steps):
    quantisers fuse a Conv with the Relu after it, so a node's own output may not exist in int8."""
    t: str | None = start
    for _ in range(limit):
        if t is None:
            return None
        if t in common:
            return t
        t = step(t)
    return t if t in common else None


@dataclass(frozen=True)
class NodeError:
    """One weight node's figures. `added` is the rise in normalised error (int8 against fp32,
    MSE over the fp32 variance) from the node's input to its output; `sqnr_db` is at its output.
    `drop_kept` is the drop with the node kept in float, `gain` the baseline drop minus that."""

    node: str
    op_type: str
    params: int
    in_float: bool = False  # the sidecar already keeps it in float
    sqnr_db: float | None = None
    added: float | None = None
    drop_kept: float | None = None
    gain: float | None = None
    floor: bool = False  # keeping it in float would leave under the coverage floor in int8 (auto never does)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def activation_errors(
    fp32: onnx.ModelProto, int8: onnx.ModelProto, feeds: list[dict], nodes: list[coverage.WeightNode]
) -> dict[str, tuple[float | None, float | None]]:
    """node key -> (SQNR in dB at its output, as the gate defines it; the normalised error added
    there) on `feeds`."""
    common = _float_tensors(fp32) & _float_tensors(int8)
    common |= {i.name for i in fp32.graph.input}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producer: dict[str, onnx.NodeProto] = {}
    for n in fp32.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
        for o in n.output:
            producer[o] = n

    def forward(t: str) -> str | None:
        c = consumers.get(t, [])
        return c[0].output[0] if len(c) == 1 and c[0].output else None

    def backward(t: str) -> str | None:
        p = producer.get(t)
        return p.input[0] if p is not None and p.input else None

    by_key = {coverage.node_key(n): n for n in fp32.graph.node}
    ends: dict[str, tuple[str | None, str | None]] = {}
    for w in nodes:
        n = by_key.get(w.key)
        if n is None or not n.output:
            continue
        act = next((i for i in n.input if i not in w.weights and i), None)
        ends[w.key] = (_walk(act, backward, common) if act else None, _walk(n.output[0], forward, common))
    wanted = {t for pair in ends.values() for t in pair if t is not None}
    inputs = {i.name for i in fp32.graph.input}
    # In a QDQ graph the value int8 computes for a tensor is what its Quantize/Dequantize pair
    # gives back (a Relu folded into the u8 range clips only there): read that where it exists.
    seen = _dequantized(int8)
    f_vals = _activations(fp32, wanted - inputs, feeds)
    q_vals = _activations(int8, {seen.get(t, t) for t in wanted - inputs}, feeds)
    errors: dict[str, tuple[float | None, float | None]] = {t: (0.0, None) for t in inputs}
    for t in wanted - inputs:
        qt = seen.get(t, t)
        errors[t] = _errors(f_vals[t], q_vals[qt]) if t in f_vals and qt in q_vals else (None, None)
    out: dict[str, tuple[float | None, float | None]] = {}
    for key, (src, dst) in ends.items():
        e_out, sqnr = errors.get(dst, (None, None)) if dst else (None, None)
        e_in = errors.get(src, (0.0, None))[0] if src else 0.0
        added = None if e_out is None or e_in is None else e_out - e_in
        out[key] = (sqnr, added)
    return out


WHY_NODES = 3


def why_nodes(fp32_path: Path, int8_path: Path, feeds: list[dict], top: int = WHY_NODES) -> list[dict]:
    """For a failing gate row: the `top` quantised weight nodes that add the most error at their
    output (the cheap measure: no re-quantisation), as plain dicts for the results document."""
    fp32 = load_model(fp32_path)
    int8 = load_model(int8_path, what="int8 sidecar")
    nodes = coverage.weight_nodes(fp32)
    floated = set(coverage.measure(fp32, int8).float_nodes)
    quantised = [w for w in nodes if w.key not in floated]
    errs = activation_errors(fp32, int8, feeds[:ACTIVATION_SAMPLES], quantised)
    ranked = sorted(
        (w for w in quantised if errs.get(w.key, (None, None))[1] is not None),
        key=lambda w: -(errs[w.key][1] or 0.0),
    )
    return [
        {"node": w.key, "op_type": w.op_type, "sqnr_db": errs[w.key][0], "added": errs[w.key][1]} for w in ranked[:top]
    ]
