"""Which quantised nodes add the error: the figures behind `quantgate explain`, the node
exclusions `quantgate auto` searches, and the "why" of a failing gate row.

Two measures, both on a fixed set of inputs (a *probe*: the gate's input distribution drawn with
its own seed, or the entry's eval set), so that candidates are compared on the same samples:

- **kept in float** (the decision-grade one): re-produce the sidecar with one node kept in float
  and measure the drop again. The difference to the baseline is what keeping that node in float
  buys, interactions downstream included. It costs one quantisation per node.
- **error at the node's output** (cheap, for the gate's "why" and to pick which nodes to try
  first on large models): run both models with every intermediate tensor exposed and compare
  int8 with fp32 at each weight node's output and input; the rise of the normalised error from
  input to output is the error the node adds there. No re-quantisation.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from . import coverage
from .errors import UserError
from .onnxio import load_model, session, sig_from_session
from .results import Coverage

PROBE_SAMPLES = 256
# The probe draws with its own seed: nodes chosen on the probe are then judged by the gate on
# other samples, so the choice does not flatter the verdict.
PROBE_SEED_OFFSET = 7919
# Intermediate tensors are compared on this many samples (they can be large).
ACTIVATION_SAMPLES = 16
# At most this many nodes are re-made in float per ranking; on larger models the ones that add
# the most error at their output are tried.
MAX_KEPT_TRIALS = 32


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
    from .inputs import plan_inputs, stream
    from .sampleset import EvalSet

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


# ---- error at each node's output ---------------------------------------------------------------

_FLOAT = onnx.TensorProto.FLOAT


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Float tensors the graph computes (node outputs), by shape inference where it can say."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
        types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    except Exception:  # inference is a hint here: without it every node output is tried
        types = {}
    out = set()
    for n in model.graph.node:
        if n.op_type == "Constant":
            continue
        for o in n.output:
            if o and types.get(o, _FLOAT) == _FLOAT:
                out.add(o)
    return out


def _dequantized(model: onnx.ModelProto) -> dict[str, str]:
    """tensor -> the output of the DequantizeLinear that follows its QuantizeLinear."""
    q_in = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.output}
    out: dict[str, str] = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input and n.input[0] in q_in and n.output:
            out.setdefault(q_in[n.input[0]], n.output[0])
    return out


def _exposed(model: onnx.ModelProto, names: set[str]) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in sorted(names - have):
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return m.SerializeToString()


def _activations(model: onnx.ModelProto, names: set[str], feeds: list[dict]) -> dict[str, list[np.ndarray]]:
    s = session(_exposed(model, names), label="model with its intermediate tensors exposed")
    wanted = [o.name for o in s.get_outputs() if o.name in names]
    values: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    for f in feeds:
        for n, v in zip(wanted, s.run(wanted, f), strict=True):
            values[n].append(np.asarray(v, dtype=np.float64).ravel())
    return values


def _errors(f: list[np.ndarray], q: list[np.ndarray]) -> tuple[float | None, float | None]:
    """(normalised error: MSE over the fp32 variance, SQNR in dB: fp32 power over error power, as
    the gate defines it) of one tensor; None where undefined."""
    a, b = np.concatenate(f), np.concatenate(q)
    if a.size != b.size or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None, None
    err = float(((b - a) ** 2).sum())
    var = float(((a - a.mean()) ** 2).sum())
    power = float((a * a).sum())
    nmse = err / var if var > 0.0 else None
    sqnr = 10.0 * math.log10(power / err) if err > 0.0 and power > 0.0 else None
    return nmse, sqnr


def _walk(start: str, step: Callable[[str], str | None], common: set[str], limit: int = 4) -> str | None:
    """`start`, or the first tensor in `common` reached by `step` from it (within `limit` steps):
    quantisers fuse a Conv with the Relu after it, so a node's own output may not exist in int8."""
    t: str | None = start
    for _ in range(limit):
        if t is None:
            return None
        if t in common:
            return t
        t = step(t)
    return t if t in common else None


@dataclass(frozen=True)
class NodeError:
    """One weight node's figures. `added` is the rise in normalised error (int8 against fp32,
    MSE over the fp32 variance) from the node's input to its output; `sqnr_db` is at its output.
    `drop_kept` is the drop with the node kept in float, `gain` the baseline drop minus that."""

    node: str
    op_type: str
    params: int
    in_float: bool = False  # the sidecar already keeps it in float
    sqnr_db: float | None = None
    added: float | None = None
    drop_kept: float | None = None
    gain: float | None = None
    floor: bool = False  # keeping it in float would leave under the coverage floor in int8 (auto never does)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def activation_errors(
    fp32: onnx.ModelProto, int8: onnx.ModelProto, feeds: list[dict], nodes: list[coverage.WeightNode]
) -> dict[str, tuple[float | None, float | None]]:
    """node key -> (SQNR in dB at its output, as the gate defines it; the normalised error added
    there) on `feeds`."""
    common = _float_tensors(fp32) & _float_tensors(int8)
    common |= {i.name for i in fp32.graph.input}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producer: dict[str, onnx.NodeProto] = {}
    for n in fp32.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
        for o in n.output:
            producer[o] = n

    def forward(t: str) -> str | None:
        c = consumers.get(t, [])
        return c[0].output[0] if len(c) == 1 and c[0].output else None

    def backward(t: str) -> str | None:
        p = producer.get(t)
        return p.input[0] if p is not None and p.input else None

    by_key = {coverage.node_key(n): n for n in fp32.graph.node}
    ends: dict[str, tuple[str | None, str | None]] = {}
    for w in nodes:
        n = by_key.get(w.key)
        if n is None or not n.output:
            continue
        act = next((i for i in n.input if i not in w.weights and i), None)
        ends[w.key] = (_walk(act, backward, common) if act else None, _walk(n.output[0], forward, common))
    wanted = {t for pair in ends.values() for t in pair if t is not None}
    inputs = {i.name for i in fp32.graph.input}
    # In a QDQ graph the value int8 computes for a tensor is what its Quantize/Dequantize pair
    # gives back (a Relu folded into the u8 range clips only there): read that where it exists.
    seen = _dequantized(int8)
    f_vals = _activations(fp32, wanted - inputs, feeds)
    q_vals = _activations(int8, {seen.get(t, t) for t in wanted - inputs}, feeds)
    errors: dict[str, tuple[float | None, float | None]] = {t: (0.0, None) for t in inputs}
    for t in wanted - inputs:
        qt = seen.get(t, t)
        errors[t] = _errors(f_vals[t], q_vals[qt]) if t in f_vals and qt in q_vals else (None, None)
    out: dict[str, tuple[float | None, float | None]] = {}
    for key, (src, dst) in ends.items():
        e_out, sqnr = errors.get(dst, (None, None)) if dst else (None, None)
        e_in = errors.get(src, (0.0, None))[0] if src else 0.0
        added = None if e_out is None or e_in is None else e_out - e_in
        out[key] = (sqnr, added)
    return out


WHY_NODES = 3


def why_nodes(fp32_path: Path, int8_path: Path, feeds: list[dict], top: int = WHY_NODES) -> list[dict]:
    """For a failing gate row: the `top` quantised weight nodes that add the most error at their
    output (the cheap measure: no re-quantisation), as plain dicts for the results document."""
    fp32 = load_model(fp32_path)
    int8 = load_model(int8_path, what="int8 sidecar")
    nodes = coverage.weight_nodes(fp32)
    floated = set(coverage.measure(fp32, int8).float_nodes)
    quantised = [w for w in nodes if w.key not in floated]
    errs = activation_errors(fp32, int8, feeds[:ACTIVATION_SAMPLES], quantised)
    ranked = sorted(
        (w for w in quantised if errs.get(w.key, (None, None))[1] is not None),
        key=lambda w: -(errs[w.key][1] or 0.0),
    )
    return [
        {"node": w.key, "op_type": w.op_type, "sqnr_db": errs[w.key][0], "added": errs[w.key][1]} for w in ranked[:top]
    ]


# ---- kept in float -----------------------------------------------------------------------------

Remake = Callable[[tuple[str, ...], Path], object]  # (nodes kept in float, output path) -> writes it


@dataclass
class Explanation:
    """What `quantgate explain` reports for one model."""

    id: str
    mode: str
    command: str  # the auto command for this model
    baseline_drop: float  # the sidecar re-made with quantgate's defaults, on the probe
    shipped_drop: float | None  # the entry's own sidecar on the same probe, when there is one
    budget: float
    probe: str
    excluded: tuple[str, ...]  # what the baseline already keeps in float (the registry's list)
    nodes: list[NodeError] = field(default_factory=list)
    coverage: Coverage | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ranked(self) -> list[NodeError]:
        """Nodes by what keeping them in float buys (largest first), then by the error they add."""

        def key(n: NodeError):
            return (n.gain is None, -(n.gain or 0.0), -(n.added or 0.0))

        return sorted(self.nodes, key=key)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "mode": self.mode,
            "budget": self.budget,
            "baseline_drop": self.baseline_drop,
            "shipped_drop": self.shipped_drop,
            "probe": self.probe,
            "excluded": list(self.excluded),
            "nodes": [n.to_json() for n in self.ranked()],
            "coverage": self.coverage.to_json() if self.coverage is not None else None,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }


def reason_for(why: str, key: str) -> str:
    """A producer's refusal as a note about node `key` (its name said once)."""
    return why.removeprefix(f"{key!r} ")


def kept_in_float(
    remake: Remake, probe: Probe, keys: list[str], base: tuple[str, ...], deadline: float | None = None
) -> Iterator[tuple[str, float, str | None]]:
    """(node, drop with it kept in float too, why not) for each of `keys`, each sidecar re-made by
    `remake` with `base` + that node excluded: NaN and the reason for a node that cannot be kept
    in float on its own (a weight shared with another node, the model's only weight node). Stops
    at `deadline` (time.monotonic())."""
    with tempfile.TemporaryDirectory(prefix="quantgate-explain-") as tmp:
        for i, k in enumerate(keys):
            if deadline is not None and time.monotonic() > deadline:
                return
            out = Path(tmp) / f"n{i}.int8.onnx"
            try:
                remake(tuple(sorted({*base, k})), out)
            except UserError as err:
                yield k, math.nan, err.problem
                continue
            yield k, probe.drop(out), None


def explain_model(
    e,
    registry: Path | None,
    *,
    remake: Remake,
    mode: str,
    top: int | None = None,
    samples: int = PROBE_SAMPLES,
    seed: int = 0,
    max_seconds: float | None = None,
    max_kept_trials: int = MAX_KEPT_TRIALS,
) -> Explanation:
    """Rank the weight nodes of an entry's model: a baseline sidecar re-made with `remake` (the
    registry's exclusions kept), every quantised node's error at its output, and the drop with
    each node kept in float (for all of them on a small model; for the `max_kept_trials` that add
    the most error on a large one)."""
    started = time.monotonic()
    deadline = started + max_seconds if max_seconds else None
    assert e.onnx_path is not None
    probe = make_probe(e, registry, samples, seed)
    fp32 = load_model(e.onnx_path)
    nodes = coverage.weight_nodes(fp32)
    if not nodes:
        raise UserError(
            "has no weight node (no Conv, MatMul, Gemm or table of rank >= 2 with constant weights)",
            subject=str(e.onnx_path),
            fix="there is nothing to quantise; keep quant_mode fp32",
        )
    base = tuple(e.nodes_to_exclude)
    notes = []
    with tempfile.TemporaryDirectory(prefix="quantgate-explain-") as tmp:
        base_path = Path(tmp) / "base.int8.onnx"
        remake(base, base_path)
        baseline_drop = probe.drop(base_path)
        q = onnx.load(str(base_path))
        cov = coverage.measure(fp32, q)
        errs = activation_errors(fp32, q, probe.feeds[:ACTIVATION_SAMPLES], nodes)
    shipped = None
    if e.int8_path is not None and e.int8_path.is_file():
        try:
            shipped = probe.drop(e.int8_path)
        except UserError as err:
            notes.append(f"the shipped sidecar does not run: {err}")
    floated = set(cov.float_nodes)
    floor_share = e.min_int8_share if e.min_int8_share is not None else coverage.MIN_SHARE
    total = cov.weight_params or 1

    def under_floor(params: int) -> bool:
        return (cov.int8_params - params) / total < floor_share

    figures = {
        w.key: NodeError(
            w.key,
            w.op_type,
            w.params,
            w.key in floated,
            sqnr_db=errs.get(w.key, (None, None))[0],
            added=errs.get(w.key, (None, None))[1],
            floor=w.key not in floated and under_floor(w.params),
        )
        for w in nodes
    }
    candidates = [w.key for w in nodes if w.key not in floated and w.key not in base]
    if len(candidates) > max_kept_trials:
        candidates.sort(key=lambda k: -(figures[k].added or 0.0))
        notes.append(
            f"{len(candidates)} quantised nodes: the {max_kept_trials} that add the most error at their output "
            "were re-made in float"
        )
        candidates = candidates[:max_kept_trials]
    tried = 0
    for k, d, why in kept_in_float(remake, probe, candidates, base, deadline):
        figures[k] = replace(
            figures[k], drop_kept=None if math.isnan(d) else d, gain=None if math.isnan(d) else baseline_drop - d
        )
        if why:
            notes.append(f"{k} cannot be kept in float on its own: {reason_for(why, k)}")
        tried += 1
    if tried < len(candidates):
        notes.append(f"time budget reached: {tried} of {len(candidates)} nodes re-made in float")
    from .advice import better_command

    ex = Explanation(
        id=e.id,
        mode=mode,
        command=better_command(e, registry),
        baseline_drop=baseline_drop,
        shipped_drop=shipped,
        budget=e.budget,
        probe=probe.source,
        excluded=base,
        nodes=list(figures.values()),
        coverage=cov,
        notes=notes,
    )
    ex.nodes = ex.ranked()[: top or len(ex.nodes)] if top else ex.ranked()
    ex.seconds = time.monotonic() - started
    return ex
