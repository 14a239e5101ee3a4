"""quantgate: int8 ONNX sidecars of small models, produced and gated against fp32."""

__version__ = "0.1.0"

from .errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, UserError
from .paths import sidecar_path

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_PASS",
    "UserError",
    "__version__",
    "load_registry",
    "quantize_dynamic",
    "quantize_static",
    "resolve",
    "run_gate",
    "sidecar_path",
]


def __getattr__(name):  # lazy: importing quantgate stays cheap until a capability is used
    if name in ("resolve", "load_registry"):
        from . import registry

        return getattr(registry, name)
    if name == "run_gate":  # `quantgate.gate` is the module; the function is run_gate
        from .gate import run_gate

        return run_gate
    if name == "quantize_dynamic":
        from .produce.dynamic import quantize_dynamic

        return quantize_dynamic
    if name == "quantize_static":
        from .produce.static import quantize_static

        return quantize_static
    raise AttributeError(name)
