"""The sidecars `quantgate auto` tries, and how each is made: dynamic PTQ, static PTQ, static PTQ
with nodes kept in float, QAT. Each is made by the same producers the CLI runs, with the default
preset (the same result on every x86 CPU)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..produce.config import QuantConfig, preset
from ..registry import Entry
from .calibration import CalibrationData

# The reference workflow's order of cost, after the sidecar that ships now (it costs nothing): no
# data, calibration data, a search of nodes kept in float (on whichever post-training mode came
# closest), training.
ORDER = ("current", "dynamic", "static", "float", "qat")


@dataclass(frozen=True)
class Candidate:
    mode: str  # the quant_mode it ships as: dynamic, static or qat
    stage: str  # one of ORDER
    config: QuantConfig
    exclude: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """current, dynamic, static, dynamic+float, static+float or qat."""
        if self.stage == "current":
            return "current"
        return f"{self.mode}+float" if self.stage == "float" else self.mode

    def settings(self) -> str:
        """The settings that tell candidates apart, in a few words."""
        c = self.config
        if self.stage == "current":
            kept = f", {len(self.exclude)} in float" if self.exclude else ""
            return f"the {self.mode} sidecar it ships{kept}"
        if self.mode == "qat":
            return "QAT config, then static PTQ"
        w = f"{'per-channel' if c.per_channel else 'per-tensor'} {'u8' if c.weight_type == 'quint8' else 's8'}"
        w += " 7-bit" if c.reduce_range else ""
        if self.mode == "static":
            w += f", {c.method}"
        if self.exclude:
            w += f", {len(self.exclude)} in float: {', '.join(self.exclude)}"
        return w


def first(mode: str, exclude: tuple[str, ...] = ()) -> Candidate:
    """The default-preset candidate of a mode (with the registry's exclusions kept)."""
    cfg = preset("default", "static" if mode == "qat" else mode)
    stage = "float" if mode != "qat" and exclude else mode
    return Candidate(mode, stage, replace(cfg, nodes_to_exclude=tuple(sorted(exclude))), tuple(sorted(exclude)))


def shipped(e: Entry) -> Candidate:
    """The sidecar the entry ships now, as it is."""
    base = first(e.mode if e.mode in ("dynamic", "static") else "static")
    return Candidate(e.mode, "current", base.config, tuple(e.nodes_to_exclude))


def with_float(c: Candidate, exclude: tuple[str, ...]) -> Candidate:
    keep = tuple(sorted(set(exclude)))
    return replace(c, stage="float" if keep else c.mode, exclude=keep, config=replace(c.config, nodes_to_exclude=keep))


def make(c: Candidate, e: Entry, data: CalibrationData | None, out: Path, *, qat_seconds: float | None = None):
    """Write candidate `c` of entry `e` to `out` (a `ProduceResult`, or a `QatResult` for QAT)."""
    assert e.onnx_path is not None
    if c.mode == "dynamic":
        from ..produce.dynamic import quantize_dynamic

        return quantize_dynamic(e.onnx_path, out, config=c.config, input_spec=e.input_spec or None)
    if c.mode == "static":
        from ..produce.static import quantize_static

        assert data is not None
        return quantize_static(e.onnx_path, data.arrays, out, config=c.config)
    from ..qat import require_torch
    from ..qat.pipeline import run_qat

    require_torch()
    assert e.qat_config_path is not None
    return run_qat(config=e.qat_config_path, output=out, nodes_to_exclude=c.exclude)


def remaker(mode: str, e: Entry, data: CalibrationData | None):
    """`(nodes kept in float, output) -> None`: the entry's sidecar re-made in `mode` with the
    default preset (QAT entries are re-made by static PTQ of their fp32 file: re-training per node
    would take hours), for `diagnose`."""
    base = first("dynamic" if mode == "dynamic" else "static")

    def remake(keep: tuple[str, ...], out: Path) -> None:
        make(with_float(base, keep), e, data, out)

    return remake
