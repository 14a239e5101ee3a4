"""Optional dependencies: import one, or say in one line which extra brings it.

quantgate's core needs only onnx, onnxruntime and numpy; torch (QAT), onnxscript (the dynamo
exporter), pyarrow (parquet), pillow (images) and matplotlib (--plots) come with extras.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UserError

TORCH_PIN = "2.13.0"
# module -> (package on the index, the extra that brings it)
EXTRAS = {
    "torch": (f"torch=={TORCH_PIN}", "qat"),
    "onnxscript": ("onnxscript==0.7.2", "qat"),  # as pyproject pins it for torch 2.13
    "pyarrow": ("pyarrow", "calibrate"),
    "PIL": ("Pillow", "calibrate"),  # as PyPI spells it; messages name it so
    "matplotlib": ("matplotlib>=3.8", "plots"),
}


def install_hint(module: str) -> str:
    """The package itself (quantgate is installed from its repository, not the package index, so
    `quantgate[extra]` only resolves in a checkout: `pip install '.[extra]'`)."""
    package, extra = EXTRAS[module.split(".")[0]]
    return f"pip install '{package}' (or, in a quantgate checkout, pip install '.[{extra}]')"


def require(module: str, *, what: str, alternative: str | None = None) -> ModuleType:
    """`import module`, or a `UserError` naming `what` needs it, the extra to install and,
    when given, another way round (e.g. "or save the data as .npz")."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        package = EXTRAS[top][0] if top in EXTRAS else top
        fix = install_hint(module) if top in EXTRAS else f"pip install {top}"
        if alternative:
            fix += f", {alternative}"
        raise UserError(
            f"needs the optional package '{package}', which is not installed ({e})", subject=what, fix=fix
        ) from None
