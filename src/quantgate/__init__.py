"""quantgate: int8 ONNX sidecars of small models, produced and gated against fp32.

The library's entry points (the CLI calls the same):

- `run_gate(registry, ids)` -> `Results`: fp32 against int8 for every selected model;
- `resolve(model_id, registry)` -> the file a runtime should load, its digest checked;
- `load_registry(path)` -> the validated `Registry`;
- `quantize_dynamic(model)`, `quantize_static(model, calibration)`, `run_qat(...)` -> `Produced`;
- `UserError`: every mistake a caller can fix, worded with the caller's parameter names.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any as _Any

from .errors import EXIT_ERROR, EXIT_FAIL, EXIT_NOTHING, EXIT_PASS, UserError
from .paths import sidecar_path

try:
    __version__ = _metadata.version("quantgate")
except _metadata.PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0.0.0+unknown"

# name -> module it lives in; loaded on first use so that `import quantgate` stays cheap
_LAZY = {
    "run_gate": ".gate",
    "GateSettings": ".gate.settings",
    "resolve": ".registry",
    "load_registry": ".registry",
    "Registry": ".registry",
    "Entry": ".registry",
    "quantize_dynamic": ".produce.dynamic",
    "quantize_static": ".produce.static",
    "QuantConfig": ".produce.config",
    "preset": ".produce.config",
    "run_qat": ".qat",
    "Results": ".results",
    "Row": ".results",
    "OutputFigures": ".results",
    "Interval": ".results",
    "Produced": ".results",
}

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_NOTHING",
    "EXIT_PASS",
    "UserError",
    "__version__",
    "sidecar_path",
    *_LAZY,
]


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'quantgate' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
