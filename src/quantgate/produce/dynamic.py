"""Dynamic PTQ: int8 weights, activations quantised at run time. Needs no data.

MatMul/Gemm with constant weights become integer matmuls; a Gather that reads a weight table (an
embedding: a float initialiser of rank >= 2 indexed along axis 0) keeps its table in 8 bits and
dequantises the rows it gathers. Other Gathers (shapes, small constant lookups) are left alone.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from ..coverage import quantiser_names
from ..errors import UserError, one_line, param
from .config import DYNAMIC_DEFAULT_OPS, QuantConfig, preset
from .pipeline import ProduceResult, preprocess, produce

_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[name]


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def gather_tables(model: onnx.ModelProto) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """Gathers that read a float weight table along axis 0 (embeddings), and the other Gathers of
    a float initialiser (which dynamic PTQ leaves in float)."""
    inits = {t.name: t for t in model.graph.initializer}
    tables: list[onnx.NodeProto] = []
    others: list[onnx.NodeProto] = []
    for n in model.graph.node:
        if n.op_type != "Gather" or not n.input or n.input[0] not in inits:
            continue
        t = inits[n.input[0]]
        if t.data_type not in _FLOATS:
            continue
        (tables if len(t.dims) >= 2 and _axis(n) == 0 else others).append(n)
    return tables, others


def _quantisable(model: onnx.ModelProto, ops: list[str]) -> int:
    """How many nodes of `ops` dynamic PTQ can quantise: MatMul with a constant weight, Gemm, and
    Gathers of a weight table."""
    inits = {t.name for t in model.graph.initializer}
    count = 0
    for n in model.graph.node:
        if n.op_type not in ops or n.op_type == "Gather":
            continue
        if n.op_type == "MatMul" and not (len(n.input) > 1 and n.input[1] in inits):
            continue
        count += 1
    if "Gather" in ops:
        count += len(gather_tables(model)[0])
    return count


def _name_nodes(src: Path, nodes: list[onnx.NodeProto]) -> list[str]:
    """Names for `nodes` so the quantiser can be told to leave them alone; unnamed ones get a name
    in the scratch copy of the model."""
    if all(n.name for n in nodes):
        return [n.name for n in nodes]
    m = onnx.load(str(src))
    wanted = {(tuple(n.input), tuple(n.output)) for n in nodes}
    names = []
    for i, n in enumerate(m.graph.node):
        if (tuple(n.input), tuple(n.output)) in wanted:
            if not n.name:
                n.name = f"quantgate_kept_gather_{i}"
            names.append(n.name)
    onnx.save(m, str(src))
    return names


def _one_draw(prepared, model: Path, spec: dict) -> dict:
    from ..inputs import draw, plan_inputs
    from .pipeline import inputs_of

    return draw(plan_inputs(inputs_of(prepared, model), spec, model=prepared.model, label=str(model)), 1, 0)[0]


# onnxruntime extra_options dynamic PTQ always sets: weights that are constants only.
DYNAMIC_OPTIONS = {"MatMulConstBOnly": True}


def applied(cfg: QuantConfig, ops: list[str]) -> dict:
    """The settings a dynamic sidecar was made with, as its report records them: what dynamic PTQ
    does not use (a calibration method and percentile, an activation type: ONNX Runtime quantises
    activations to u8 at run time) is None, the format is QOperator, the ops those quantised."""
    return {
        **cfg.to_json(),
        "op_types": ops,
        "method": None,
        "quant_format": "qoperator",
        "activation_type": None,
        "percentile": None,
    }


def quantize_dynamic(
    model: str | Path,
    output: str | Path | None = None,
    *,
    config: QuantConfig | None = None,
    report_out: str | Path | None = None,
    argv: list[str] | None = None,
    input_spec: dict | None = None,
) -> ProduceResult:
    """Write the dynamic-PTQ sidecar of `model` (default `<stem>.int8.onnx` beside it). The
    result is run once on a draw of `input_spec` (a registry entry's quant_inputs: symbolic dims a
    model needs fixed) before it is written."""
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    cfg = config or preset("default", "dynamic")
    ops = list(cfg.op_types or DYNAMIC_DEFAULT_OPS)
    if DYNAMIC_OPTIONS.keys() & cfg.extra.keys():
        raise UserError(
            f"{', '.join(sorted(DYNAMIC_OPTIONS.keys() & cfg.extra.keys()))} is set by dynamic PTQ itself",
            subject=param("extra"),
            fix="leave it out",
        )
    model = Path(model)

    def quantise(src: Path, dst: Path, prepared) -> dict:
        if not _quantisable(prepared.model, ops):
            present = {n.op_type for n in prepared.model.graph.node}
            raise UserError(
                f"has no {'/'.join(o for o in ops if o != 'Gather') or 'quantisable'} node with "
                f"constant weights{' or Gather of a weight table' if 'Gather' in ops else ''} to quantise "
                f"dynamically (its ops: {', '.join(sorted(present))})",
                subject=str(model),
                fix=f"use 'quantgate ptq-static' for conv models or pass {param('op_types')}",
            )
        details: dict = {"op_types_requested": ops}
        if cfg.preprocess:
            src, details["preprocess"] = preprocess(src, model)
        graph = onnx.load(str(src)) if cfg.preprocess else prepared.model
        tables, others = gather_tables(graph)
        if "Gather" in ops:
            details["gather_tables"] = [n.input[0] for n in tables]
        exclude = _name_nodes(src, others) if "Gather" in ops and others else []
        exclude += [n for n in quantiser_names(cfg.nodes_to_exclude) if n not in exclude]
        try:
            ort_quantize_dynamic(
                str(src),
                str(dst),
                op_types_to_quantize=ops,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range,
                weight_type=_qtype(cfg.weight_type),
                nodes_to_exclude=exclude or None,
                extra_options={**cfg.extra, **DYNAMIC_OPTIONS},
            )
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"dynamic quantisation failed: {one_line(e, 300)}", subject=str(model)) from None
        return details

    return produce(
        mode="dynamic",
        model_path=model,
        output=Path(output) if output else None,
        quantise=quantise,
        sample_feed=lambda p: _one_draw(p, model, input_spec) if input_spec else None,
        config=applied(cfg, ops),
        report_out=Path(report_out) if report_out else None,
        argv=argv,
        exclude=cfg.nodes_to_exclude,
    )
