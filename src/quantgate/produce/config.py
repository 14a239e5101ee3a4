"""Producer settings as one small object, with named presets per CPU target.

A preset fills the fields; explicit options override it. Defaults are fixed (not read from
the CPU) so the same inputs give the same bytes on every machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..errors import UserError

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

    def with_options(self, **kw) -> "QuantConfig":
        kw = {k: v for k, v in kw.items() if v is not None}
        if "method" in kw and kw["method"] not in METHODS:
            raise UserError(f"--method: unknown '{kw['method']}'; use one of {', '.join(METHODS)}")
        return replace(self, **kw)


PRESETS: dict[str, QuantConfig] = {
    # u8 activations x s8 weights: the fast path of VNNI (AVX512-VNNI / AVX-VNNI) kernels.
    "default": QuantConfig(),
    "avx512_vnni": QuantConfig(),
    # Without VNNI, u8xs8 products can saturate the 16-bit intermediate: 7-bit weights avoid it.
    "avx2": QuantConfig(reduce_range=True),
    # Arm dot-product kernels take s8 x s8.
    "arm64": QuantConfig(activation_type="qint8"),
}


def preset(name: str) -> QuantConfig:
    if name not in PRESETS:
        raise UserError(f"--preset: unknown '{name}'; use one of {', '.join(PRESETS)}")
    return PRESETS[name]
