"""What an int8 ONNX graph holds: which ops run in int8, and which can compute differently on
different x86 CPUs.

On x86 CPUs without VNNI (AVX2, AVX-512 without VNNI), ONNX Runtime multiplies u8 activations
by s8 weights with `vpmaddubsw`, which adds each pair of products in 16 bits and saturates when
both are large: 255 * (|w1| + |w2|) > 32767, possible as soon as a weight's magnitude exceeds
64. VNNI (`vpdpbusd`) and AMX accumulate in 32 bits and do not. Weights within 7 bits
(|w| <= 64) or u8 weights cannot saturate, so they compute the same on every x86 CPU.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

QUANT_HELPERS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
# Largest weight magnitude whose adjacent pairs cannot saturate a 16-bit sum against u8 activations.
SAFE_WEIGHT = 64
# op type -> (activation input, weight input, activation zero-point input) of integer ops.
_INTEGER_OPS = {
    "MatMulInteger": (0, 1, 2),
    "ConvInteger": (0, 1, 2),
    "QLinearConv": (0, 3, 2),
    "QLinearMatMul": (0, 3, 2),
}
_QDQ_CONSUMERS = {"Conv", "MatMul", "Gemm", "ConvTranspose"}


def quantized_op_types(model: onnx.ModelProto) -> dict[str, int]:
    """Which ops run in int8: integer ops (dynamic), ops fed by DequantizeLinear (QDQ), and
    Gathers that read an 8-bit table (a quantised embedding)."""
    int8_tables = {
        t.name for t in model.graph.initializer if t.data_type in (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)
    }
    # Rows gathered from an 8-bit table are dequantised for the float op that reads them: that op
    # does not run in int8.
    gathered = {
        n.output[0] for n in model.graph.node if n.op_type == "Gather" and n.input and n.input[0] in int8_tables
    }
    dq_out = {
        o
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and not (n.input and n.input[0] in gathered)
        for o in n.output
    }
    counts: collections.Counter = collections.Counter()
    for n in model.graph.node:
        if n.op_type in QUANT_HELPERS:
            continue
        if (
            n.op_type.endswith("Integer")
            or n.op_type.startswith(("QLinear", "DynamicQuantize"))
            or n.op_type in ("QGemm", "QAttention")
            or any(i in dq_out for i in n.input)
            or (n.op_type == "Gather" and n.input and n.input[0] in int8_tables)
        ):
            counts[n.op_type] += 1
    return dict(sorted(counts.items()))


@dataclass
class SaturationRisk:
    """Integer ops whose u8 x s8 products can saturate on AVX2: which, and how large their weights."""

    ops: dict[str, int] = field(default_factory=dict)
    max_abs_weight: int = 0

    def __bool__(self) -> bool:
        return bool(self.ops)

    def describe(self) -> str:
        ops = ", ".join(f"{k}×{v}" for k, v in sorted(self.ops.items()))
        return (
            f"its u8×s8 integer ops ({ops}) use weights up to |{self.max_abs_weight}| (over {SAFE_WEIGHT}): "
            "on x86 CPUs without VNNI (AVX2) their 16-bit pair sums can saturate, so the same file "
            "gives another result there"
        )


def saturation_risk(model: onnx.ModelProto) -> SaturationRisk:
    """The u8-activation x s8-weight ops of `model` whose weights exceed 7 bits."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    risk = SaturationRisk()

    def weight_max(name: str) -> int | None:
        t = inits.get(name)
        if t is None or t.data_type != onnx.TensorProto.INT8:
            return None
        a = numpy_helper.to_array(t)
        return int(np.abs(a.astype(np.int16)).max()) if a.size else 0

    def activation_is_u8(value: str, zero_point: str | None) -> bool:
        if zero_point and zero_point in inits:
            return inits[zero_point].data_type == onnx.TensorProto.UINT8
        p = producers.get(value)
        if p is None:
            return False
        if p.op_type == "DynamicQuantizeLinear":
            return True
        if p.op_type == "QuantizeLinear":
            zp = p.input[2] if len(p.input) > 2 else ""
            return not zp or (zp in inits and inits[zp].data_type == onnx.TensorProto.UINT8)
        return False

    def note(op: str, w: int | None) -> None:
        if w is not None and w > SAFE_WEIGHT:
            risk.ops[op] = risk.ops.get(op, 0) + 1
            risk.max_abs_weight = max(risk.max_abs_weight, w)

    for n in g.node:
        if n.op_type in _INTEGER_OPS:
            a, w, zp = _INTEGER_OPS[n.op_type]
            if len(n.input) > w and activation_is_u8(n.input[a], n.input[zp] if len(n.input) > zp else None):
                note(n.op_type, weight_max(n.input[w]))
        elif n.op_type in _QDQ_CONSUMERS:
            dqs = [producers[i] for i in n.input[:2] if i in producers]
            if len(dqs) < 2 or not all(d.op_type == "DequantizeLinear" for d in dqs):
                continue
            act, wdq = dqs  # Conv/MatMul/Gemm: data first, weights second
            if activation_is_u8(act.input[0], act.input[2] if len(act.input) > 2 else None):
                note(n.op_type, weight_max(wdq.input[0]))
    return risk
