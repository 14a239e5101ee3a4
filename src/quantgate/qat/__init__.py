"""Quantisation-aware training: the third production tier, for models static PTQ cannot keep
inside their budget. `run_qat` (Python) and `quantgate qat` (CLI) run the same pipeline.

torch is an optional extra; importing this package does not import it. The pipeline module is
loaded on first use, after `require_torch` has turned a missing torch into one line.
"""

from __future__ import annotations

from .. import optional
from .config import LOSSES, DataSpec, QatSettings, load_config

TORCH_PIN = optional.TORCH_PIN
INSTALL_HINT = optional.install_hint("torch")

__all__ = ["LOSSES", "DataSpec", "QatResult", "QatSettings", "load_config", "require_torch", "run_qat"]


def require_torch() -> None:
    """Raise the one-line install hint when torch cannot be imported."""
    optional.require("torch", what="quantgate qat")


def run_qat(*args, **kwargs):
    """See `quantgate.qat.pipeline.run_qat`."""
    require_torch()
    from .pipeline import run_qat as _run_qat

    return _run_qat(*args, **kwargs)


def __getattr__(name):
    if name == "QatResult":
        require_torch()
        from .pipeline import QatResult

        return QatResult
    raise AttributeError(name)
