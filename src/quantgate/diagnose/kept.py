"""Kept in float, the decision-grade measure: the sidecar re-made with one node kept in float
and its drop measured again on the probe. The difference to the baseline is what keeping that
node in float buys, interactions downstream included; it costs one quantisation per node.
`explain_model` ranks an entry's weight nodes by it (the figures of `quantgate explain`)."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx

from .. import coverage
from ..errors import UserError
from ..onnxio import load_model
from ..results import Coverage
from .nodes import ACTIVATION_SAMPLES, NodeError, activation_errors
from .probe import PROBE_SAMPLES, Probe, make_probe

# At most this many nodes are re-made in float per ranking; on larger models the ones that add
# the most error at their output are tried.
MAX_KEPT_TRIALS = 32

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


def _baseline(remake: Remake, base: tuple[str, ...], probe: Probe, fp32: onnx.ModelProto, nodes: list) -> tuple:
    """The sidecar re-made with the registry's exclusions `base`: (its drop on the probe, its
    coverage, every weight node's error at its output)."""
    with tempfile.TemporaryDirectory(prefix="quantgate-explain-") as tmp:
        base_path = Path(tmp) / "base.int8.onnx"
        remake(base, base_path)
        baseline_drop = probe.drop(base_path)
        q = onnx.load(str(base_path))
        cov = coverage.measure(fp32, q)
        errs = activation_errors(fp32, q, probe.feeds[:ACTIVATION_SAMPLES], nodes)
    return baseline_drop, cov, errs


def _shipped_drop(e, probe: Probe, notes: list[str]) -> float | None:
    """The drop of the entry's own sidecar on the probe; None (and a note when it does not run)
    when there is none to score."""
    if e.int8_path is None or not e.int8_path.is_file():
        return None
    try:
        return probe.drop(e.int8_path)
    except UserError as err:
        notes.append(f"the shipped sidecar does not run: {err}")
        return None


def _node_figures(nodes: list, cov: Coverage, errs: dict, floor_share: float) -> dict[str, NodeError]:
    """Each weight node's figures before any is re-made in float: its error at its output, and
    whether keeping it in float would leave under the coverage floor `floor_share`."""
    floated = set(cov.float_nodes)
    total = cov.weight_params or 1

    def under_floor(params: int) -> bool:
        return (cov.int8_params - params) / total < floor_share

    return {
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


def _to_keep(
    nodes: list, figures: dict[str, NodeError], base: tuple[str, ...], most: int, notes: list[str]
) -> list[str]:
    """The quantised nodes to re-make in float one at a time: all of them, or on a large model the
    `most` that add the most error at their output (said in a note)."""
    candidates = [w.key for w in nodes if not figures[w.key].in_float and w.key not in base]
    if len(candidates) > most:
        candidates.sort(key=lambda k: -(figures[k].added or 0.0))
        notes.append(
            f"{len(candidates)} quantised nodes: the {most} that add the most error at their output "
            "were re-made in float"
        )
        candidates = candidates[:most]
    return candidates


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
    from ..advice import better_command

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
    notes: list[str] = []
    baseline_drop, cov, errs = _baseline(remake, base, probe, fp32, nodes)
    shipped = _shipped_drop(e, probe, notes)
    floor_share = e.min_int8_share if e.min_int8_share is not None else coverage.MIN_SHARE
    figures = _node_figures(nodes, cov, errs, floor_share)
    candidates = _to_keep(nodes, figures, base, max_kept_trials, notes)
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
