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
from ..onnxio import external_data_files, graph_inputs, inline_external_data, load_model, session

MIN_OPSET = 10  # QuantizeLinear/DequantizeLinear appear in opset 10


@dataclass
class Preflight:
    """A model checked and ready to quantise: its graph (external weights inlined), what the
    checks changed, its opset, the files its weights came from."""

    model: onnx.ModelProto
    dropped_value_info: int
    opset: int
    external_files: list[Path]  # the .onnx.data files the model's weights were read from

    @property
    def external_data(self) -> bool:
        return bool(self.external_files)


def preflight(path: Path) -> Preflight:
    model = load_model(path, external=False)
    external_files = external_data_files(model, path)  # named before inlining clears the references
    inline_external_data(model, path)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise UserError(
            "declares no ai.onnx opset",
            subject=str(path),
            field="opset_import",
            fix="re-export it with an opset_import for the default domain",
        )
    if opset < MIN_OPSET:
        raise UserError(
            f"opset {opset} is older than {MIN_OPSET}, the first with int8 operators",
            subject=str(path),
            field="opset_import",
            fix="upgrade it (onnx.version_converter) or re-export",
        )
    fp16 = [i.name for i in model.graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16]
    fp16 += [t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    if fp16:
        # The onnxruntime quantiser inserts float32-only ops and writes a model that does not load.
        raise UserError(
            f"float16 graph ('{fp16[0]}' is float16); the int8 quantiser takes float32 models",
            subject=str(path),
            fix="export the model in float32 and quantise that",
        )
    # value_info is only a hint; the quantiser re-infers shapes and trips over stale ones.
    dropped = len(model.graph.value_info)
    del model.graph.value_info[:]
    if not graph_inputs(model, path):
        raise UserError(
            "the model has no inputs; there is nothing to calibrate or gate",
            subject=str(path),
            fix="export it with its inputs as graph inputs (not initializers)",
        )
    session(model.SerializeToString(), label=str(path))
    return Preflight(model, dropped, opset, external_files)
