"""Where `quantgate auto` takes the data static PTQ calibrates on: the entry's calibration set,
else its eval set, else draws from the gate's input distribution (`quant_inputs`), which are
synthetic and said to be so wherever they are used."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inputs import draw, plan_inputs
from ..npz import read_npz
from ..onnxio import load_model, session, sig_from_session
from ..paths import display
from ..registry import Entry

SYNTHETIC_SAMPLES = 256
# Synthetic calibration draws are not the gate's own samples (nor the probe's).
SYNTHETIC_SEED_OFFSET = 104729


@dataclass(frozen=True)
class CalibrationData:
    arrays: dict[str, np.ndarray]
    source: str  # "calibration set", "eval set" or "synthetic"
    path: Path  # where it is read from, or where auto writes the set it made
    note: str  # one line for the report and the registry

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


def default_path(e: Entry, registry: Path) -> Path:
    """Where a set auto makes goes: where the entry says its set is (a file not there yet), else
    `calibration/<id>.npz` beside the registry, as the shipped examples are laid out."""
    if e.calibration_path is not None and not e.calibration_path.exists():
        return e.calibration_path
    folder = registry.resolve().parent / "calibration"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in e.id) or "model"
    path = folder / f"{stem}.npz"
    n = 1
    while path.exists():  # never over a file the registry does not name for this entry
        n += 1
        path = folder / f"{stem}.auto{n}.npz"
    return path


def calibration_for(e: Entry, registry: Path, root: Path, seed: int = 0) -> CalibrationData:
    """The entry's calibration data, in the order the reference workflow gives."""
    if e.calibration_path is not None and e.calibration_path.is_file():
        arrays = read_npz(e.calibration_path)
        n = len(next(iter(arrays.values()))) if arrays else 0
        return CalibrationData(
            arrays,
            "calibration set",
            e.calibration_path,
            f"calibration set {display(e.calibration_path, root)} ({n} samples)",
        )
    if e.eval_path is not None and e.eval_path.is_file():
        arrays = read_npz(e.eval_path, what="eval set")
        n = len(next(iter(arrays.values()))) if arrays else 0
        return CalibrationData(
            arrays,
            "eval set",
            e.eval_path,
            f"the eval set {display(e.eval_path, root)} ({n} samples; the gate measures on it too)",
        )
    assert e.onnx_path is not None
    s = session(e.onnx_path, label=str(e.onnx_path))
    ins, _ = sig_from_session(s)
    plans = plan_inputs(ins, e.input_spec, model=load_model(e.onnx_path, external=False), label=f"{registry}: {e.id}")
    feeds = draw(plans, SYNTHETIC_SAMPLES, seed + SYNTHETIC_SEED_OFFSET)
    arrays = {p.name: np.stack([f[p.name] for f in feeds]) for p in plans}
    spec = "quant_inputs" if e.input_spec else "the model's signature (uniform [0, 1) floats)"
    note = (
        f"synthetic: {SYNTHETIC_SAMPLES} draws from the gate's input distribution ({spec}, seed "
        f"{seed + SYNTHETIC_SEED_OFFSET}), not real data; made by quantgate auto"
    )
    return CalibrationData(arrays, "synthetic", default_path(e, registry), note)
