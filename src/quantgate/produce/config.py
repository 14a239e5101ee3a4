"""Producer settings as one small object, with named presets per CPU target.

A preset fills the fields; explicit options override it. The `default` preset is fixed (not read
from the CPU) so the same inputs give the same bytes on every machine, and its files compute the
same on every x86 CPU. `auto` picks a preset from this machine's CPU when asked to (`detect`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..errors import UserError, param

METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("quint8", "qint8")
QUANT_FORMATS = ("qdq", "qoperator")
# MatMul/Gemm, and Gather where it reads a weight table (an embedding): half of a sentence
# encoder's bytes are its embedding table. Conv is left out: dynamic ConvInteger runs several
# times slower than fp32 Conv on x86 (field notes), so conv models belong to static PTQ.
DYNAMIC_DEFAULT_OPS = ("MatMul", "Gemm", "Gather")


@dataclass(frozen=True)
class QuantConfig:
    per_channel: bool = True
    method: str = "minmax"  # static only
    activation_type: str = "quint8"  # static activations (dynamic ones are always u8 in ONNX Runtime)
    weight_type: str = "qint8"
    reduce_range: bool = False  # 7-bit weights
    op_types: tuple[str, ...] | None = None  # None: the mode's default set
    percentile: float = 99.999
    quant_format: str = "qdq"  # static only; dynamic PTQ is always QOperator (MatMulInteger)
    preprocess: bool = False  # onnxruntime's quant_pre_process (shape inference, basic fusion) first
    # Nodes kept in float (names as `coverage.node_key` gives them: the node's name, else its first
    # output), from the registry's quant_nodes_to_exclude or --exclude-node.
    nodes_to_exclude: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # onnxruntime's extra_options, passed as given

    def __post_init__(self) -> None:
        """Every field checked here, however the config was made (the CLI, `with_options`, a
        caller's `QuantConfig(...)`): one `UserError` naming the field and the values it takes."""
        for key, allowed in (
            ("method", METHODS),
            ("quant_format", QUANT_FORMATS),
            ("weight_type", QUANT_TYPES),
            ("activation_type", QUANT_TYPES),
        ):
            value = getattr(self, key)
            if not isinstance(value, str) or value not in allowed:
                raise UserError(f"unknown '{value}'", subject=param(key), fix=f"use one of {', '.join(allowed)}")
        for key in ("per_channel", "reduce_range", "preprocess"):
            if not isinstance(getattr(self, key), bool):
                raise UserError(f"{getattr(self, key)!r} is not true or false", subject=param(key))
        p = self.percentile
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 100:
            raise UserError(f"{p!r} is not a percentile", subject=param("percentile"), fix="give a number in (0, 100]")
        for key in ("op_types", "nodes_to_exclude"):
            names = getattr(self, key)
            if names is not None and (isinstance(names, str) or not all(isinstance(n, str) for n in names)):
                raise UserError(f"{names!r} is not a list of names", subject=param(key))
        if not isinstance(self.extra, dict):
            raise UserError(f"{self.extra!r} is not a mapping of onnxruntime extra_options", subject=param("extra"))

    def to_json(self) -> dict:
        d = asdict(self)
        d["op_types"] = list(self.op_types) if self.op_types else None
        d["nodes_to_exclude"] = list(self.nodes_to_exclude)
        return d

    def with_options(self, **kw) -> QuantConfig:
        """This config with the options given (None: keep this one's), checked as any config is."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def cpu_independent(cfg: QuantConfig) -> bool:
    """Whether files made with `cfg` compute the same on every x86 CPU: no u8/s8 x s8 integer
    product with weights beyond 7 bits (ONNX Runtime shifts s8 activations to u8 on x86)."""
    return cfg.weight_type == "quint8" or cfg.reduce_range


@dataclass(frozen=True)
class Preset:
    """Settings for one CPU target; `cpu_independent` says whether its files compute the same on
    every x86 CPU (no u8 x s8 integer op with weights beyond 7 bits)."""

    name: str
    description: str
    cpu_independent: bool
    dynamic: QuantConfig
    static: QuantConfig

    def config(self, mode: str) -> QuantConfig:
        return self.dynamic if mode == "dynamic" else self.static


# Chosen by measurement (bench/producer_sweep.py, bench/encoder_bench.py; docs/benchmarks.md):
# - dynamic: per-channel 7-bit s8 weights. ONNX Runtime's u8 x s8 kernels take the VNNI/AMX fast
#   path with them, and their 16-bit pair sums cannot saturate on AVX2, so the file computes the
#   same everywhere. u8 weights compute the same too but fall off the fast path: on the encoder
#   benchmark (22.6M parameters, AMX machine, one thread) they ran at 0.95x fp32's speed, 7-bit s8
#   weights at 2.78x, drops 0.00044 and 0.00126 against a 0.02 budget. The embedding Gather is
#   quantised too: 3.85x smaller than fp32 instead of 1.54x, drop 0.00111 -> 0.00126.
# - static: per-channel u8 activations x u8 weights. 7-bit s8 weights would be faster but took the
#   shipped nr_metric_v1 over its 0.01 budget (0.0146 against 0.0078), and these conv nets are
#   slower in int8 than fp32 in every form measured.
# ONNX Runtime's own advice (onnxruntime.ai/docs/performance/model-optimizations/quantization.html,
# "Data type selection", "When to use reduce-range and per-channel quantization?"): on x86 with
# AVX2 or AVX512 but no VNNI, u8 x s8 saturates, so use reduce_range (7-bit weights) or U8U8, and
# reduce_range with per-channel; with VNNI reduce_range is not needed; Arm and VNNI have no
# saturation issue. The CPU-specific presets follow that.
PRESETS: dict[str, Preset] = {
    "default": Preset(
        "default",
        "every CPU: 7-bit s8 weights (dynamic), u8 weights (static); the same result on every x86 CPU",
        True,
        dynamic=QuantConfig(per_channel=True, weight_type="qint8", reduce_range=True),
        static=QuantConfig(per_channel=True, weight_type="quint8"),
    ),
    "avx2": Preset(
        "avx2",
        "x86 without VNNI (AVX2, AVX512 without VNNI): u8 x s8 with 7-bit weights (reduce_range)",
        True,
        dynamic=QuantConfig(per_channel=True, reduce_range=True),
        static=QuantConfig(per_channel=False, reduce_range=True),
    ),
    "avx512_vnni": Preset(
        "avx512_vnni",
        "x86 with VNNI or AMX: u8 x full-range s8 weights; NOT CPU-independent: on x86 CPUs without "
        "VNNI these files compute another result (16-bit saturation)",
        False,
        dynamic=QuantConfig(per_channel=True, weight_type="qint8"),
        static=QuantConfig(per_channel=True, weight_type="qint8"),
    ),
    "arm64": Preset(
        "arm64",
        "Arm64 (dot-product kernels): full-range s8 weights, s8 x s8 static; NOT CPU-independent: "
        "on x86 CPUs without VNNI these files compute another result; not measured on Arm here",
        False,
        dynamic=QuantConfig(per_channel=True, weight_type="qint8"),
        static=QuantConfig(per_channel=False, activation_type="qint8"),
    ),
}
AUTO = "auto"
PRESET_NAMES = (*PRESETS, AUTO)


def detect(cpu: dict | None = None, kernels: dict | None = None) -> tuple[str, str]:
    """The preset for this CPU (or the given `cpu_info()`/`int8_kernels()` dicts), and why."""
    if cpu is None or kernels is None:
        from ..cpu import cpu_info, int8_kernels

        cpu = cpu if cpu is not None else cpu_info()
        kernels = kernels if kernels is not None else int8_kernels()
    arch = str(cpu.get("arch", "")).lower()
    features = set(cpu.get("int8_features") or ())
    family = kernels.get("family", "unknown")
    if arch in ("aarch64", "arm64"):
        return "arm64", f"{arch} CPU"
    if arch not in ("x86_64", "amd64", "x86", "i686"):
        return "default", f"{arch or 'unknown'} CPU: no preset of its own"
    if kernels.get("u8s8") == "saturating":
        return "avx2", f"u8×s8 saturates here ({family})"
    if kernels.get("u8s8") == "exact" and features & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "avx512_vnni", f"u8×s8 exact here ({family})"
    return "default", f"int8 kernels: {family}"


def resolve(name: str) -> tuple[Preset, str | None]:
    """The preset a name stands for; for `auto`, the detected one and why it was chosen."""
    if name == AUTO:
        chosen, why = detect()
        return PRESETS[chosen], why
    if name not in PRESETS:
        raise UserError(f"unknown '{name}'", subject=param("preset"), fix=f"use one of {', '.join(PRESET_NAMES)}")
    return PRESETS[name], None


def preset(name: str, mode: str) -> QuantConfig:
    """The settings a preset gives a mode ("dynamic" or "static")."""
    return resolve(name)[0].config(mode)
