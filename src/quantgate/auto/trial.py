"""One candidate of `quantgate auto`, made and judged: written by the same producer the CLI runs
into a scratch folder, then gated as the registry would gate it (the same estimator, the gate's
own per-model measurement). A marginal verdict is not a pass, and a candidate that stores under
the coverage floor of its weights in int8 is int8 in name only."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import coverage
from ..errors import UserError, one_line
from ..gate.settings import GateSettings
from ..registry import Entry
from ..results import Coverage, Row
from . import candidates as cands
from .calibration import CalibrationData, calibration_for


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


def _speed(row: Row) -> tuple[float | None, str | None]:
    """int8/fp32 time at batch 1 on one thread and whether it is slower, faster or the same within
    its interval, from the gate's timing of the row (`gate --bench`)."""
    for t in row.latency.timings if row.latency else ():
        if t.get("threads") == "1" and t.get("batch") == 1:
            return float(t["ratio"]), str(t.get("verdict"))
    return None, None


class Trials:
    """The candidates of one entry, made in a scratch folder and each gated; `tried` holds every
    one in the order it was tried. `min_share` is the coverage floor (a share of the weights)."""

    def __init__(
        self,
        e: Entry,
        registry: Path,
        root: Path,
        *,
        seed: int,
        settings: GateSettings,
        min_share: float,
        log: Callable[[str], None],
    ):
        self.e, self.registry, self.root = e, registry, root
        self.seed = seed
        self.settings = settings
        self.min_share = min_share
        self.log = log
        self.tried: list[Tried] = []
        self.scratch = Path(tempfile.mkdtemp(prefix="quantgate-auto-"))
        self.data: CalibrationData | None = None

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

    def skip(self, c: cands.Candidate, reason: str) -> None:
        """A candidate not tried, and why."""
        self.tried.append(Tried(c, "skipped", reason))

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
