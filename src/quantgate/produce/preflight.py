"""Make a user's model safe to hand to the onnxruntime quantiser.

Inline external data, drop `value_info` hints (exporters leave stale shapes there that make the
quantiser fail with "Inferred shape and existing shape differ"), require an ai.onnx opset, and
check the model loads in ONNX Runtime before any quantisation starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from ..errors import UserError
from ..onnxio import graph_inputs, inline_external_data, load_model, session

MIN_OPSET = 10  # QuantizeLinear/DequantizeLinear appear in opset 10


@dataclass
class Prepared:
    model: onnx.ModelProto
    dropped_value_info: int
    opset: int
    external_data: bool


def prepare(path: Path) -> Prepared:
    model = load_model(path, external=False)
    had_external = inline_external_data(model, path)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise UserError(f"{path}: declares no ai.onnx opset; re-export it with an opset_import "
                        "for the default domain")
    if opset < MIN_OPSET:
        raise UserError(f"{path}: opset {opset} is older than {MIN_OPSET}, the first with int8 "
                        "operators; upgrade it (onnx.version_converter) or re-export")
    # value_info is only a hint; the quantiser re-infers shapes and trips over stale ones.
    dropped = len(model.graph.value_info)
    del model.graph.value_info[:]
    if not graph_inputs(model, path):
        raise UserError(f"{path}: the model has no inputs; there is nothing to calibrate or gate")
    session(model.SerializeToString(), label=str(path))
    return Prepared(model, dropped, opset, had_external)
