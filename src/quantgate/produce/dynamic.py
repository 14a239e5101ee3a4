"""Dynamic PTQ: int8 weights, activations quantised at run time. Needs no data."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError, one_line, param
from .config import DYNAMIC_DEFAULT_OPS, QuantConfig, preset
from .pipeline import ProduceResult, produce


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[name]


def quantize_dynamic(
    model: str | Path,
    output: str | Path | None = None,
    *,
    config: QuantConfig | None = None,
    report_out: str | Path | None = None,
    argv: list[str] | None = None,
) -> ProduceResult:
    """Write the dynamic-PTQ sidecar of `model` (default `<stem>.int8.onnx` beside it)."""
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    cfg = config or preset("default", "dynamic")
    ops = list(cfg.op_types or DYNAMIC_DEFAULT_OPS)
    model = Path(model)

    def quantise(src: Path, dst: Path, prepared) -> dict:
        present = {n.op_type for n in prepared.model.graph.node}
        if not present & set(ops):
            raise UserError(
                f"{model}: has no {'/'.join(ops)} node to quantise dynamically (its ops: "
                f"{', '.join(sorted(present))}); use 'quantgate ptq-static' for conv models or "
                f"pass {param('op_types')}"
            )
        try:
            ort_quantize_dynamic(
                str(src),
                str(dst),
                op_types_to_quantize=ops,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range,
                weight_type=_qtype(cfg.weight_type),
                extra_options={"MatMulConstBOnly": True},
            )
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{model}: dynamic quantisation failed: {one_line(e, 300)}") from None
        return {"op_types_requested": ops}

    return produce(
        mode="dynamic",
        model_path=model,
        output=Path(output) if output else None,
        quantise=quantise,
        sample_feed=lambda _p: None,
        config={**cfg.to_json(), "op_types": ops, "method": None},
        report_out=Path(report_out) if report_out else None,
        argv=argv,
    )
