"""Producer settings as one small object, with named presets per CPU target.

A preset fills the fields; explicit options override it. Defaults are fixed (not read from
the CPU) so the same inputs give the same bytes on every machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..errors import UserError, param

METHODS = ("minmax", "entropy", "percentile")
# MatMul/Gemm only by default: dynamic ConvInteger runs several times slower than fp32 Conv
# on x86 (field notes), so conv models belong to static PTQ.
DYNAMIC_DEFAULT_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class QuantConfig:
    per_channel: bool = True
    method: str = "minmax"  # static only
    activation_type: str = "quint8"  # static activations: u8 asymmetric suits ReLU-heavy nets
    weight_type: str = "qint8"
    reduce_range: bool = False
    op_types: tuple[str, ...] | None = None  # None: the mode's default set
    percentile: float = 99.999
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["op_types"] = list(self.op_types) if self.op_types else None
        return d

    def with_options(self, **kw) -> QuantConfig:
        kw = {k: v for k, v in kw.items() if v is not None}
        if "method" in kw and kw["method"] not in METHODS:
            raise UserError(
                f"unknown '{kw['method']}'", subject=param("method"), fix=f"use one of {', '.join(METHODS)}"
            )
        return replace(self, **kw)


# Measured on the shipped models with the adaptive gate, natively (AMX/AVX512-VNNI) and as an
# AVX2-only CPU computes them (bench/producer_sweep.py, docs/benchmarks.md "Producer defaults"):
# u8 activations x full-range s8 weights saturate ONNX Runtime's AVX2 integer kernels (pair sums
# in 16 bits) and give another drop there (nr_metric_v1 0.0107 here, 0.0078 on AVX2; per-channel
# 0.0095 vs 0.0285); u8 weights and 7-bit s8 weights compute the same on both. u8 weights were the
# more accurate of the two on every model (nr_metric_v1 0.0078 against 0.0125-0.0146 with 7-bit
# weights), so the default uses them; per-channel, which helped the outlier MLP (0.0179 against
# 0.0219) and changed nothing measurable elsewhere.
PRESETS: dict[str, dict[str, QuantConfig]] = {
    "default": {
        "dynamic": QuantConfig(per_channel=True, weight_type="quint8"),
        "static": QuantConfig(per_channel=True, weight_type="quint8"),
    },
    # x86 without VNNI: 7-bit weights keep u8 x s8 products from saturating.
    "avx2": {
        "dynamic": QuantConfig(per_channel=True, reduce_range=True),
        "static": QuantConfig(per_channel=False, reduce_range=True),
    },
    # Arm dot-product kernels take s8 x s8 (not measured on these x86 machines).
    "arm64": {
        "dynamic": QuantConfig(per_channel=True, weight_type="qint8"),
        "static": QuantConfig(per_channel=False, activation_type="qint8"),
    },
}


def preset(name: str, mode: str) -> QuantConfig:
    """The settings a preset gives a mode ("dynamic" or "static")."""
    if name not in PRESETS:
        raise UserError(f"unknown '{name}'", subject=param("preset"), fix=f"use one of {', '.join(PRESETS)}")
    return PRESETS[name][mode]
