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
# At most this many bytes of synthetic draws are written (a 3x224x224 input gets 32 samples, not 256).
SYNTHETIC_BYTES = 16 * 1024 * 1024
SYNTHETIC_MIN = 32
# An eval set of fewer samples is not split into a calibration half and a judging half.
MIN_SPLIT = 16
# Synthetic calibration draws are not the gate's own samples (nor the probe's).
SYNTHETIC_SEED_OFFSET = 104729


@dataclass(frozen=True)
class CalibrationData:
    arrays: dict[str, np.ndarray]
    source: str  # "calibration set", "eval set" or "synthetic"
    path: Path  # where it is read from, or where auto writes the set it made
    note: str  # one line for the report and the registry
    held_out: Path | None = None  # the eval samples not calibrated on (static candidates are judged on them)

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


def _split_eval_set(e: Entry, registry: Path, root: Path, scratch: Path | None) -> CalibrationData:
    """Half of the eval set (every other sample) to calibrate on, the other half to judge on: a
    sidecar judged on the samples it was calibrated on looks better than it is (their ranges
    never clip)."""
    import io

    assert e.eval_path is not None
    arrays = read_npz(e.eval_path, what="eval set")
    n = len(next(iter(arrays.values()))) if arrays else 0
    shown = display(e.eval_path, root)
    path = default_path(e, registry)
    if n < MIN_SPLIT or scratch is None:
        note = f"the eval set {shown} ({n} samples; too few to split, so the gate measures on the calibration samples)"
        return CalibrationData(arrays, "eval set", path, note)
    cal = {k: v[0::2] for k, v in arrays.items()}
    held = {k: v[1::2] for k, v in arrays.items()}
    held_out = scratch / "held_out.npz"
    buf = io.BytesIO()
    np.savez(buf, **held)  # type: ignore[arg-type]
    held_out.write_bytes(buf.getvalue())
    kept = len(next(iter(cal.values())))
    note = (
        f"every other sample of the eval set {shown} ({kept} of {n}), written by quantgate auto; "
        "static candidates were judged on the other half"
    )
    return CalibrationData(cal, "eval set", path, note, held_out)


def calibration_for(
    e: Entry, registry: Path, root: Path, seed: int = 0, scratch: Path | None = None
) -> CalibrationData:
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
        return _split_eval_set(e, registry, root, scratch)
    assert e.onnx_path is not None
    s = session(e.onnx_path, label=str(e.onnx_path))
    ins, _ = sig_from_session(s)
    plans = plan_inputs(ins, e.input_spec, model=load_model(e.onnx_path, external=False), label=f"{registry}: {e.id}")
    one = draw(plans, 1, seed + SYNTHETIC_SEED_OFFSET)[0]
    per_sample = sum(v.nbytes for v in one.values()) or 1
    count = max(SYNTHETIC_MIN, min(SYNTHETIC_SAMPLES, SYNTHETIC_BYTES // per_sample))
    feeds = draw(plans, count, seed + SYNTHETIC_SEED_OFFSET)
    arrays = {p.name: np.stack([f[p.name] for f in feeds]) for p in plans}
    spec = "quant_inputs" if e.input_spec else "the model's signature (uniform [0, 1) floats)"
    note = (
        f"synthetic: {count} draws from the gate's input distribution ({spec}, seed "
        f"{seed + SYNTHETIC_SEED_OFFSET}), not real data; made by quantgate auto"
    )
    return CalibrationData(arrays, "synthetic", default_path(e, registry), note)
