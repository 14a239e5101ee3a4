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
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import coverage, diagnose
from ..errors import UserError, one_line
from ..gate.settings import GateSettings
from ..registry import Entry
from ..results import Coverage, Row
from . import candidates as cands
from .calibration import CalibrationData, calibration_for

PREFERENCES = ("cost", "size", "speed", "accuracy")
DEFAULT_MINUTES = 10.0
MAX_FLOAT_NODES = 4


@dataclass
class Tried:
    """One candidate: how it was made, what the gate said, what it cost to find out."""

    candidate: cands.Candidate
    status: str  # pass, fail, marginal, error, name-only (int8 in name only), skipped
    reason: str = ""
    row: Row | None = None
    coverage: Coverage | None = None
    int8_bytes: int | None = None
    size_ratio: float | None = None
    speed_ratio: float | None = None  # int8/fp32 time, from the gate's timing
    speed_verdict: str | None = None  # slower, faster or same: whether the ratio's interval excludes 1
    seconds: float = 0.0
    file: Path | None = None  # the candidate sidecar (in the scratch folder)
    notes: list[str] = field(default_factory=list)

    @property
    def drop(self) -> float | None:
        return self.row.drop if self.row is not None else None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_json(self) -> dict:
        r = self.row
        return {
            "mode": self.candidate.mode,
            "candidate": self.candidate.name,
            "stage": self.candidate.stage,
            "settings": self.candidate.settings(),
            "config": self.candidate.config.to_json(),
            "nodes_to_exclude": list(self.candidate.exclude),
            "status": self.status,
            "reason": self.reason,
            "drop": r.drop if r else None,
            "drop_ci": r.drop_ci.to_json() if r and r.drop_ci else None,
            "samples": r.samples if r else None,
            "marginal": bool(r and r.marginal),
            "size_ratio": self.size_ratio,
            "int8_bytes": self.int8_bytes,
            "speed_ratio": self.speed_ratio,
            "speed_verdict": self.speed_verdict,
            "coverage": self.coverage.to_json() if self.coverage else None,
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
        }


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


def _speed(row: Row) -> tuple[float | None, str | None]:
    """int8/fp32 time at batch 1 on one thread and whether it is slower, faster or the same within
    its interval, from the gate's timing of the row (`gate --bench`)."""
    for t in row.latency.timings if row.latency else ():
        if t.get("threads") == "1" and t.get("batch") == 1:
            return float(t["ratio"]), str(t.get("verdict"))
    return None, None


class Search:
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
            raise UserError(f"unknown preference '{prefer}'", fix=f"use one of {', '.join(PREFERENCES)}")
        self.e, self.registry, self.root = e, registry, root
        self.prefer = prefer
        self.started = time.monotonic()
        self.deadline = self.started + max_minutes * 60.0
        self.seed = seed
        self.qat = qat
        self.max_float_nodes = max_float_nodes
        self.settings = settings or GateSettings(seed=seed, bench=prefer == "speed")
        self.min_share = e.min_int8_share if e.min_int8_share is not None else coverage.MIN_SHARE
        self.tried: list[Tried] = []
        self.log = log or (lambda _msg: None)
        self.scratch = Path(tempfile.mkdtemp(prefix="quantgate-auto-"))
        self.data: CalibrationData | None = None
        self._probe: diagnose.Probe | None = None

    # -- helpers ------------------------------------------------------------------------------
    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def probe(self) -> diagnose.Probe:
        if self._probe is None:
            self._probe = diagnose.make_probe(self.e, self.registry, seed=self.seed)
        return self._probe

    def calibration(self) -> CalibrationData:
        if self.data is None:
            self.data = calibration_for(self.e, self.registry, self.root, self.seed, self.scratch)
        return self.data

    def judge(self, c: cands.Candidate, *, searched: float = 0.0) -> Tried:
        """Make candidate `c` and gate it as the registry would, with the same estimator (static
        candidates calibrated on half of the eval set are judged on the other half). `searched`:
        seconds spent finding it, counted in its time."""
        from ..gate.entry import gate_entry

        t0 = time.monotonic() - searched
        assert self.e.onnx_path is not None
        out = self.scratch / f"c{len(self.tried)}" / (self.e.onnx_path.name[:-5] + ".int8.onnx")
        out.parent.mkdir(parents=True)
        self.log(f"{self.e.id}: trying {c.name} ({c.settings()})")
        t = Tried(c, "error", file=out)
        try:
            data = self.calibration() if c.mode == "static" else None
            made = cands.make(c, self.e, data, out)
        except UserError as err:
            t.status, t.reason = "skipped", one_line(err, 300)
            t.seconds = time.monotonic() - t0
            self.tried.append(t)
            return t
        t.int8_bytes = out.stat().st_size
        t.coverage = getattr(made, "coverage", None) or self._coverage(out)
        same = next((x for x in self.tried if x.candidate.stage == "current" and x.row is not None), None)
        if same is not None and self.e.int8_path is not None and out.read_bytes() == self.e.int8_path.read_bytes():
            t.notes.append("the same file as the sidecar it ships: judged once")
            t.row, t.status, t.reason = same.row, same.status, same.reason
            t.size_ratio, t.speed_ratio, t.speed_verdict = same.size_ratio, same.speed_ratio, same.speed_verdict
            t.seconds = time.monotonic() - t0
            self.tried.append(t)
            return t
        entry = replace(
            self.e, mode=c.mode, int8_path=out, int8_sha256=None, nodes_to_exclude=c.exclude, warnings=[], problems=[]
        )
        if c.mode == "static" and data is not None and data.held_out is not None:
            entry = replace(entry, eval_path=data.held_out)
        self._verdict(t, gate_entry(entry, self.settings, self.root, self.registry))
        t.seconds = time.monotonic() - t0
        self.tried.append(t)
        return t

    def _coverage(self, path: Path) -> Coverage:
        import onnx

        from ..onnxio import load_model

        assert self.e.onnx_path is not None
        return coverage.measure(load_model(self.e.onnx_path, external=False), onnx.load(str(path)))

    def _verdict(self, t: Tried, row: Row) -> None:
        """Fill `t` from the gate's row: a marginal row is never a pass, whatever the marginal
        policy made of it, and a candidate under the coverage floor is int8 in name only."""
        t.row = row
        t.size_ratio = row.size_ratio
        t.speed_ratio, t.speed_verdict = _speed(row)
        if t.coverage is None and row.coverage is not None:
            t.coverage = row.coverage
        share = t.coverage.int8_share if t.coverage is not None else None
        if share is not None and share < self.min_share:
            t.status = "name-only"
            t.reason = (
                f"int8 in name only: {share:.0%} of the weights in int8 (left in float: "
                f"{coverage.float_ops_text(t.coverage)})"  # type: ignore[arg-type]
            )
        elif row.marginal:
            t.status, t.reason = "marginal", row.reason or "marginal"
        else:
            t.status, t.reason = row.status, row.reason or ""
        self.log(
            f"{self.e.id}: {t.candidate.name}: {t.status}" + (f" drop {row.drop:.6f}" if row.drop is not None else "")
        )

    def current(self) -> Tried | None:
        """The sidecar the entry ships now, gated as it stands (digests included)."""
        from ..gate.entry import gate_entry

        e = self.e
        if e.mode == "fp32" or e.int8_path is None or not e.int8_path.is_file():
            return None
        t0 = time.monotonic()
        c = cands.shipped(e)
        t = Tried(c, "error", file=None, int8_bytes=e.int8_path.stat().st_size)
        self._verdict(t, gate_entry(e, self.settings, self.root, self.registry if e.index >= 0 else None))
        if t.row is not None and t.row.status == "error":
            t.status = "error"
        t.seconds = time.monotonic() - t0
        self.tried.append(t)
        return t

    def best(self) -> Tried | None:
        ok = [t for t in self.tried if t.passed]
        if not ok:
            return None
        if self.prefer == "size":
            return min(ok, key=lambda t: (t.int8_bytes or math.inf, self.tried.index(t)))
        if self.prefer == "speed":
            return min(
                ok, key=lambda t: (t.speed_ratio if t.speed_ratio is not None else math.inf, self.tried.index(t))
            )
        if self.prefer == "accuracy":
            return min(ok, key=lambda t: (t.drop if t.drop is not None else math.inf, self.tried.index(t)))
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
            return stage in ("float", "qat") and any(t.candidate.stage == "static" for t in self.tried)
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
            if not any(t.row is not None for t in self.tried):
                first = next((t.reason for t in self.tried if t.reason), "no candidate could be made")
                raise UserError(f"{self.e.id}: no int8 candidate could be made: {first}")
            return self.outcome()
        except BaseException:
            self.close()
            raise

    def search(self) -> None:
        self.current()
        if not self.settled("dynamic"):
            self.judge(cands.first("dynamic"))
        if not self.settled("static") and not self.out_of_time():
            self.judge(cands.first("static"))
        # The post-training candidates that came close, closest first: keep their worst nodes in float
        # (for --prefer accuracy the passing ones too: float nodes can only lower their drop).
        wanted = ("fail", "marginal", "pass") if self.prefer == "accuracy" else ("fail", "marginal")
        near = sorted(
            (
                t
                for t in self.tried
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
            self.tried.append(
                Tried(cands.first("qat"), "skipped", "the entry names no QAT config (quant_qat_config) to try next")
            )

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

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
        data = self.calibration() if mode == "static" else None
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
                t = self.judge(cands.with_float(start.candidate, tuple(keep)), searched=time.monotonic() - searching)
                searching = time.monotonic()
                if t.passed and self.prefer != "accuracy":
                    return

    def try_qat(self) -> None:
        try:
            from ..qat import require_torch

            require_torch()
        except UserError as err:
            self.tried.append(Tried(cands.first("qat"), "skipped", one_line(err, 200)))
            return
        self.judge(cands.first("qat", tuple(self.e.nodes_to_exclude)))

    def outcome(self) -> Outcome:
        chosen = self.best()
        seconds = time.monotonic() - self.started
        e = self.e
        if chosen is None:
            why = "no candidate meets every budget" + (" within the time budget" if self.out_of_time() else "")
            return Outcome(e, self.tried, None, f"keep fp32: {why}", self.data, seconds, True, self.scratch, False)
        stage = chosen.candidate.name
        if self.prefer == "speed" and chosen.speed_verdict == "slower":
            return Outcome(
                e,
                self.tried,
                None,
                f"keep fp32: the fastest passing int8 candidate ({stage}) takes {chosen.speed_ratio:.2f}x fp32's "
                "time on this CPU",
                self.data,
                seconds,
                True,
                self.scratch,
            )
        if self.prefer == "size" and chosen.size_ratio is not None and chosen.size_ratio >= 1.0:
            return Outcome(
                e,
                self.tried,
                None,
                f"keep fp32: the smallest passing int8 candidate ({stage}) is {chosen.size_ratio:.2f}x fp32's size",
                self.data,
                seconds,
                True,
                self.scratch,
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
            what = f"keep the shipped {e.mode} sidecar{fig}"
        else:
            what = f"ship {stage} ({chosen.candidate.settings()}){fig}"
        return Outcome(
            e, self.tried, chosen, f"{what}, preferring {self.prefer}", self.data, seconds, False, self.scratch
        )


def cleanup(o: Outcome) -> None:
    if o.scratch is not None:
        shutil.rmtree(o.scratch, ignore_errors=True)


def failed(e: Entry, err: UserError) -> Outcome:
    """The outcome of a model that could not be searched."""
    return Outcome(e, [], None, f"error: {err}", None, 0.0, False, None, False, error=str(err))
