"""The commands quantgate suggests: a complete command line that fits the model, never a hint
that would lead to a do-nothing sidecar.

A fix is the producer of the entry's mode with every argument it needs (the model, the
calibration set, the registry id), or `quantgate auto ID` where re-producing in the same mode
cannot help: a dynamic sidecar that leaves most weights in float (a conv net), a model over its
budget, a QAT entry without a QAT config.
"""

from __future__ import annotations

from pathlib import Path

from .coverage import MIN_SHARE
from .paths import display
from .registry import DEFAULT_REGISTRY, Entry
from .results import Coverage
from .text import shell_word


def _shown(path: Path | None, fallback: str) -> str:
    return shell_word(display(path, Path.cwd())) if path is not None else fallback


def _registry_args(e: Entry, registry: Path | None) -> str:
    reg = "" if registry is None or str(registry) == DEFAULT_REGISTRY else f" --registry {shell_word(str(registry))}"
    return f" --registry-id {shell_word(e.id)}{reg}"


def auto_command(e: Entry, registry: Path | None) -> str:
    """`quantgate auto ID`: tries every mode and keeps the cheapest that meets the budget."""
    reg = "" if registry is None or str(registry) == DEFAULT_REGISTRY else f" --registry {shell_word(str(registry))}"
    return f"quantgate auto {shell_word(e.id)}{reg}"


def reproduce_command(e: Entry, registry: Path | None, cov: Coverage | None = None) -> str:
    """The command that re-makes the entry's sidecar in its mode (for a stale or missing file),
    or `quantgate auto` where that mode cannot make a real int8 model of it."""
    model = _shown(e.onnx_path, "MODEL.onnx")
    listed = e.index >= 0
    if e.mode == "dynamic":
        if cov is not None and cov.int8_share is not None and cov.int8_share < MIN_SHARE:
            return auto_command(e, registry) if listed else f"quantgate ptq-static {model} -c SET.npz"
        return f"quantgate ptq-dynamic {model}" + (_registry_args(e, registry) if listed else "")
    if e.mode == "static":
        if listed and (e.calibration_path is None or not e.calibration_path.is_file()):
            return auto_command(e, registry)  # no set to calibrate on yet: auto makes one
        cal = _shown(e.calibration_path, "SET.npz")
        return f"quantgate ptq-static {model} -c {cal}" + (_registry_args(e, registry) if listed else "")
    if e.mode == "qat":
        if e.qat_config_path is None:
            return (
                "quantgate qat --config CONFIG.yaml --output "
                + _shown(e.int8_path, "MODEL.int8.onnx")
                + (_registry_args(e, registry) if listed else "")
            )
        return (
            f"quantgate qat --config {_shown(e.qat_config_path, 'CONFIG.yaml')} --output "
            f"{_shown(e.int8_path, 'MODEL.int8.onnx')}" + (_registry_args(e, registry) if listed else "")
        )
    return auto_command(e, registry)


def better_command(e: Entry, registry: Path | None) -> str:
    """For a model over its budget or int8 in name only: the search that finds a mode that fits
    (for a model no registry lists, by its path)."""
    if e.index < 0:
        return f"quantgate auto {_shown(e.onnx_path, 'MODEL.onnx')}"
    return auto_command(e, registry)
