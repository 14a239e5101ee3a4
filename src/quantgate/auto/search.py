"""`quantgate auto`: for one registry entry, try the sidecars the reference workflow would, in
its order of cost, judge each with the gate's own per-model measurement, and keep the one the
user prefers among those that meet every budget.

Order: the sidecar the entry ships now (it costs nothing), dynamic PTQ, static PTQ, then each
post-training candidate that missed (closest first) with the nodes whose float copy lowers the
drop most kept in float (one at a time, re-ranked after each), then QAT when the entry names a
QAT config. A candidate that stores under half of its weights in int8 (`coverage.MIN_SHARE`, or
the entry's quant_min_int8_weight_share) is never chosen: it is fp32 in all but name. A marginal
verdict is not a pass. The search stops as soon as no later candidate can beat the best one for
the preference, or at the time budget. A model that cannot be quantised at all (a corrupt file,
a digest mismatch, an fp16 graph) is an error, not a verdict.

This module decides what to try and when to stop; `trial` makes each candidate and judges it.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import coverage, diagnose
from ..errors import UserError, one_line, param
from ..gate.settings import GateSettings
from ..registry import Entry
from . import candidates as cands
from .calibration import CalibrationData
from .trial import Trials, Tried

PREFERENCES = ("cost", "size", "speed", "accuracy")
DEFAULT_MINUTES = 10.0
MAX_FLOAT_NODES = 4


@dataclass
class Outcome:
    """What auto found for one entry."""

    entry: Entry
    tried: list[Tried]
    chosen: Tried | None
    decision: str  # one line: what ships and why
    calibration: CalibrationData | None
    seconds: float
    keep_fp32: bool = False  # the answer is fp32 (no candidate fits, or int8 is slower and speed was asked)
    scratch: Path | None = None
    found: bool = True  # a candidate met every budget (False: the model stays over budget in int8)
    error: str | None = None  # the model could not be searched (one line; the run exits 2)

    def to_json(self) -> dict:
        return {
            "id": self.entry.id,
            "budget": self.entry.budget,
            "was": self.entry.mode,
            "chosen": self.tried.index(self.chosen) if self.chosen is not None else None,
            "keep_fp32": self.keep_fp32,
            "found": self.found,
            "error": self.error,
            "decision": self.decision,
            "calibration": None
            if self.calibration is None
            else {"source": self.calibration.source, "path": str(self.calibration.path), "note": self.calibration.note},
            "candidates": [t.to_json() for t in self.tried],
            "seconds": round(self.seconds, 3),
        }


class Search:
    """The search for one entry: which candidates to try, in what order, and when to stop; each
    is made and judged by its `Trials`."""

    def __init__(
        self,
        e: Entry,
        registry: Path,
        root: Path,
        *,
        prefer: str = "cost",
        max_minutes: float = DEFAULT_MINUTES,
        seed: int = 0,
        qat: bool = True,
        max_float_nodes: int = MAX_FLOAT_NODES,
        settings: GateSettings | None = None,
        log=None,
    ):
        if prefer not in PREFERENCES:
            raise UserError(f"unknown '{prefer}'", subject=param("prefer"), fix=f"use one of {', '.join(PREFERENCES)}")
        self.e, self.registry = e, registry
        self.prefer = prefer
        self.started = time.monotonic()
        self.deadline = self.started + max_minutes * 60.0
        self.seed = seed
        self.qat = qat
        self.max_float_nodes = max_float_nodes
        self.min_share = e.min_int8_share if e.min_int8_share is not None else coverage.MIN_SHARE
        self.log = log or (lambda _msg: None)
        self.trials = Trials(
            e,
            registry,
            root,
            seed=seed,
            settings=settings or GateSettings(seed=seed, bench=prefer == "speed"),
            min_share=self.min_share,
            log=self.log,
        )
        self._probe: diagnose.Probe | None = None

    # -- helpers ------------------------------------------------------------------------------
    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def probe(self) -> diagnose.Probe:
        if self._probe is None:
            self._probe = diagnose.make_probe(self.e, self.registry, seed=self.seed)
        return self._probe

    def best(self) -> Tried | None:
        ok = [t for t in self.trials.tried if t.passed]
        if not ok:
            return None
        if self.prefer == "size":
            return min(ok, key=lambda t: (t.int8_bytes or math.inf, self.trials.tried.index(t)))
        if self.prefer == "speed":
            return min(
                ok, key=lambda t: (t.speed_ratio if t.speed_ratio is not None else math.inf, self.trials.tried.index(t))
            )
        if self.prefer == "accuracy":
            return min(ok, key=lambda t: (t.drop if t.drop is not None else math.inf, self.trials.tried.index(t)))
        return ok[0]

    def settled(self, stage: str) -> bool:
        """Whether no candidate from `stage` on can beat the best one for the preference."""
        b = self.best()
        if b is None:
            return False
        if self.prefer == "cost":
            return True
        if self.prefer in ("size", "speed"):
            # keeping nodes in float only adds bytes and float ops; QAT ships the same graph as
            # static PTQ: once both full-int8 modes are known, nothing later beats them
            return stage in ("float", "qat") and any(t.candidate.stage == "static" for t in self.trials.tried)
        return False

    # -- the search ---------------------------------------------------------------------------
    def precheck(self) -> None:
        """A model quantgate cannot quantise at all is one line, not a table of failures: a
        corrupt file, an fp16 graph, a digest the registry does not match."""
        from ..produce.preflight import preflight
        from ..registry import verify_digest

        assert self.e.onnx_path is not None
        verify_digest(self.e.onnx_path, self.e.sha256, field_name="sha256", registry=self.registry)
        preflight(self.e.onnx_path)

    def run(self) -> Outcome:
        try:
            self.precheck()
            self.search()
            if not any(t.row is not None for t in self.trials.tried):
                first = next((t.reason for t in self.trials.tried if t.reason), "no candidate could be made")
                raise UserError(f"no int8 candidate could be made: {first}", subject=self.e.id)  # first: its own fix
            return self.outcome()
        except BaseException:
            self.close()
            raise

    def search(self) -> None:
        self.trials.current()
        if not self.settled("dynamic"):
            self.trials.judge(cands.first("dynamic"))
        if not self.settled("static") and not self.out_of_time():
            self.trials.judge(cands.first("static"))
        # The post-training candidates that came close, closest first: keep their worst nodes in float
        # (for --prefer accuracy the passing ones too: float nodes can only lower their drop).
        wanted = ("fail", "marginal", "pass") if self.prefer == "accuracy" else ("fail", "marginal")
        near = sorted(
            (
                t
                for t in self.trials.tried
                if t.status in wanted and t.file is not None and t.drop is not None and not t.candidate.exclude
            ),
            key=lambda t: t.drop or 0.0,
        )
        for t in near:
            if self.settled("float") or self.out_of_time():
                break
            self.float_search(t)
        if self.e.qat_config_path is not None:
            if self.qat and not self.settled("qat") and not self.out_of_time():
                self.try_qat()
        elif self.best() is None and self.e.index >= 0:
            self.trials.skip(cands.first("qat"), "the entry names no QAT config (quant_qat_config) to try next")

    def close(self) -> None:
        self.trials.close()

    def float_search(self, start: Tried) -> None:
        """From candidate `start`, keep in float the node whose float copy lowers the probe's drop
        most, then the next (re-ranked each time). A candidate whose probe drop is within the
        budget is judged by the gate; the search ends at a pass, after `max_float_nodes` nodes,
        at the coverage floor, when no node lowers the drop further, or at the time budget."""
        import onnx

        from ..onnxio import load_model

        assert self.e.onnx_path is not None and start.file is not None
        probe = self.probe()
        fp32 = load_model(self.e.onnx_path)
        nodes = {w.key: w for w in coverage.weight_nodes(fp32)}
        total = sum(w.params for w in nodes.values()) or 1
        mode = start.candidate.mode
        data = self.trials.calibration() if mode == "static" else None
        remake = cands.remaker(mode, self.e, data)
        keep: list[str] = []
        current = probe.drop(start.file)
        q = onnx.load(str(start.file))
        floated = set(coverage.measure(fp32, q).float_nodes)
        added = 0
        searching = time.monotonic()
        while added < self.max_float_nodes and not self.out_of_time():
            in_float = sum(nodes[k].params for k in keep if k in nodes)
            pool = [
                k
                for k in nodes
                if k not in keep and k not in floated and (total - in_float - nodes[k].params) / total >= self.min_share
            ]
            if not pool:
                start.notes.append(f"{mode}: no further node can be kept in float above the coverage floor")
                return
            if len(pool) > diagnose.MAX_KEPT_TRIALS:  # large models: re-make only the nodes adding most error
                feeds = probe.feeds[: diagnose.ACTIVATION_SAMPLES]
                errs = diagnose.activation_errors(fp32, q, feeds, [nodes[k] for k in pool])
                pool = sorted(pool, key=lambda k: -(errs.get(k, (None, None))[1] or 0.0))[: diagnose.MAX_KEPT_TRIALS]
            trials = []
            for k, d, why in diagnose.kept_in_float(remake, probe, pool, tuple(keep), self.deadline):
                if why:
                    start.notes.append(f"{mode}: {k} cannot be kept in float on its own: {diagnose.reason_for(why, k)}")
                elif not math.isnan(d):
                    trials.append((d, k))
            if not trials:
                return
            d, k = min(trials)
            if d >= current:
                start.notes.append(f"{mode}: keeping another node in float does not lower the drop ({k}: {d:.6f})")
                return
            keep.append(k)
            added += 1
            current = d
            start.notes.append(f"{mode}: kept {k} in float: drop on the probe {d:.6f}")
            self.log(f"{self.e.id}: {mode}: keeping {k} in float: drop on the probe {d:.6f}")
            if d <= self.e.budget:
                t = self.trials.judge(
                    cands.with_float(start.candidate, tuple(keep)), searched=time.monotonic() - searching
                )
                searching = time.monotonic()
                if t.passed and self.prefer != "accuracy":
                    return

    def try_qat(self) -> None:
        try:
            from ..qat import require_torch

            require_torch()
        except UserError as err:
            self.trials.skip(cands.first("qat"), one_line(err, 200))
            return
        self.trials.judge(cands.first("qat", tuple(self.e.nodes_to_exclude)))

    def outcome(self) -> Outcome:
        """What ships for the entry, with the one line that says why."""
        chosen = self.best()
        if chosen is None:
            why = "no candidate meets every budget" + (" within the time budget" if self.out_of_time() else "")
            return self._outcome(None, f"keep fp32: {why}", found=False)
        stage = chosen.candidate.name
        if self.prefer == "speed" and chosen.speed_verdict == "slower":
            return self._outcome(
                None,
                f"keep fp32: the fastest passing int8 candidate ({stage}) takes {chosen.speed_ratio:.2f}x fp32's "
                "time on this CPU",
            )
        if self.prefer == "size" and chosen.size_ratio is not None and chosen.size_ratio >= 1.0:
            return self._outcome(
                None,
                f"keep fp32: the smallest passing int8 candidate ({stage}) is {chosen.size_ratio:.2f}x fp32's size",
            )
        d = chosen.row.drop if chosen.row else None
        fig = f", drop {d:.6f}" if d is not None else ""
        if chosen.size_ratio is not None and chosen.size_ratio > 1.0 - coverage.MIN_SAVING:
            fig += (
                f"; note: its file is {chosen.size_ratio:.2f}x fp32's (at this size the scales and added nodes "
                "eat the saving)"
            )
        if chosen.speed_verdict == "slower" and chosen.speed_ratio is not None:
            fig += f"; note: it takes {chosen.speed_ratio:.2f}x fp32's time on this CPU"
        if chosen.candidate.stage == "current":
            what = f"keep the shipped {self.e.mode} sidecar{fig}"
        else:
            what = f"ship {stage} ({chosen.candidate.settings()}){fig}"
        return self._outcome(chosen, f"{what}, preferring {self.prefer}")

    def _outcome(self, chosen: Tried | None, decision: str, *, found: bool = True) -> Outcome:
        """The outcome shipping `chosen` (None: fp32); `found`: a candidate met every budget."""
        t = self.trials
        seconds = time.monotonic() - self.started
        return Outcome(self.e, t.tried, chosen, decision, t.data, seconds, chosen is None, t.scratch, found)


def cleanup(o: Outcome) -> None:
    if o.scratch is not None:
        shutil.rmtree(o.scratch, ignore_errors=True)


def failed(e: Entry, err: UserError) -> Outcome:
    """The outcome of a model that could not be searched."""
    text = err.render(subject=err.subject != e.id)  # the row names the model already
    return Outcome(e, [], None, f"error: {text}", None, 0.0, False, None, False, error=text)
