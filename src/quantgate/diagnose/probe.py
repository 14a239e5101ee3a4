"""A probe: fixed inputs and the fp32 model's judged outputs on them, so that int8 candidates are
compared on the same samples (a paired comparison). The samples are the entry's eval set, else
draws from the gate's input distribution with a seed of their own."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..onnxio import load_model, session, sig_from_session

PROBE_SAMPLES = 256
# The probe draws with its own seed: nodes chosen on the probe are then judged by the gate on
# other samples, so the choice does not flatter the verdict.
PROBE_SEED_OFFSET = 7919


@dataclass
class Probe:
    """Fixed inputs and the fp32 model's judged outputs on them: a paired comparison of int8
    candidates (each is scored on exactly these samples)."""

    fp32_path: Path
    names: list[str]  # the judged outputs
    feeds: list[dict]
    reference: list[list[np.ndarray]]  # per sample, per judged output
    source: str  # what the samples are, for reports

    def outputs(self, int8: Path | bytes) -> list[list[np.ndarray]]:
        """The judged outputs of an int8 model on the probe's samples (per sample, per output)."""
        s = session(int8, label=str(int8) if isinstance(int8, Path) else "candidate")
        return [s.run(self.names, f) for f in self.feeds]

    def drop(self, int8: Path | bytes) -> float:
        """The worst judged output's drop, 1 - PLCC over every sample's values pooled (the gate's
        point figure); NaN where undefined (an output constant on the probe)."""
        got = self.outputs(int8)
        worst = 0.0
        for k in range(len(self.names)):
            a = np.concatenate([np.ravel(r[k]) for r in self.reference]).astype(np.float64)
            b = np.concatenate([np.ravel(g[k]) for g in got]).astype(np.float64)
            d = _drop(a, b)
            if math.isnan(d):
                return math.nan
            worst = max(worst, d)
        return worst


def _drop(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float(da @ da) * float(db @ db))
    if den == 0.0:
        return 0.0 if np.array_equal(a, b) else math.nan
    return 1.0 - float(da @ db) / den


def make_probe(
    e, registry: Path | None, samples: int = PROBE_SAMPLES, seed: int = 0, *, offset: int = PROBE_SEED_OFFSET
) -> Probe:
    """The probe of a registry entry (or an ad hoc one): its eval set when it has one, else
    `samples` draws from its gate input plan (quant_inputs), by default with a seed apart from the
    gate's (`offset` 0: the gate's own first samples)."""
    from ..inputs import plan_inputs, stream
    from ..sampleset import EvalSet

    assert e.onnx_path is not None
    fp32 = e.onnx_path
    s = session(fp32, label=str(fp32))
    ins, outs = sig_from_session(s)
    names = list(e.gate_outputs or [o.name for o in outs])
    if e.eval_path is not None:
        feeds = list(itertools.islice(EvalSet.of_entry(e, ins).feeds(), samples))  # read a row at a time
        source = f"{len(feeds)} samples of the eval set {e.raw.get('quant_eval_set')}"
    else:
        plans = plan_inputs(
            ins, e.input_spec, model=load_model(fp32, external=False), label=f"{registry or fp32}: {e.id}"
        )
        feeds = list(itertools.islice(stream(plans, seed + offset), samples))
        source = f"{samples} draws from the gate's input distribution (seed {seed + offset})"
    reference = [s.run(names, f) for f in feeds]
    return Probe(fp32, names, feeds, reference, source)
