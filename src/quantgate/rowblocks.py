"""The typed blocks of a results row (`results.Row`): its budgets, how it was sampled, the AVX2
check, the timings, its inputs. Each writes the JSON the results document has always held for it
(docs/cli.md), key order included, and reads it back, keeping keys a newer writer added.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Interval:
    """A 95 % confidence interval of a figure."""

    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def to_json(self) -> list[float]:
        return [self.low, self.high]

    @classmethod
    def from_json(cls, v: Any) -> Interval | None:
        return cls(float(v[0]), float(v[1])) if v is not None else None


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _unknown(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: copy.deepcopy(v) for k, v in d.items() if k not in names}


@dataclass(frozen=True)
class Budgets:
    """Every budget a row was judged against: figure -> threshold (None: not judged), in the order
    the gate judges them. The JSON is that mapping, with the unjudged figures left out."""

    drop: float | None = None
    sqnr_db: float | None = None
    rmse: float | None = None
    gain_offset: float | None = None

    def items(self) -> list[tuple[str, float]]:
        return [(f.name, v) for f in fields(self) if (v := getattr(self, f.name)) is not None]

    def __bool__(self) -> bool:
        return bool(self.items())

    def to_json(self) -> dict:
        return dict(self.items())

    @classmethod
    def from_json(cls, d: Any) -> Budgets:
        return cls(**{k: float(v) for k, v in _known(cls, d or {}).items()})


@dataclass(frozen=True)
class Bootstrap:
    """How a row's intervals were computed: the bootstrap's method, replicates, confidence, tail
    allowance and seed."""

    method: str
    replicates: int
    confidence: float
    tail_allowance: float
    seed: tuple[int, ...]

    def to_json(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "seed": list(self.seed)}

    @classmethod
    def from_json(cls, d: Any) -> Bootstrap | None:
        if not isinstance(d, dict):
            return None
        kw = _known(cls, d)
        kw["seed"] = tuple(kw.get("seed") or ())
        return cls(**{"method": "", "replicates": 0, "confidence": 0.0, "tail_allowance": 0.0, **kw})


@dataclass(frozen=True)
class SamplingRecord:
    """How a row was sampled: mode (adaptive, fixed, eval set), the count, why it stopped, the
    looks evaluated and planned, each look's confidence, the bootstrap; the eval set's rows and
    a note where there are."""

    mode: str
    samples: int
    stopped: str
    steps: tuple[int, ...]
    planned: tuple[int, ...]
    look_confidence: float
    bootstrap: Bootstrap | None
    available: int | None = None  # rows of the eval set
    note: str | None = None
    extra: dict = field(default_factory=dict)  # keys a newer writer added; kept on a round trip

    def to_json(self) -> dict:
        d: dict = {
            "mode": self.mode,
            "samples": self.samples,
            "stopped": self.stopped,
            "steps": list(self.steps),
            "planned": list(self.planned),
            "look_confidence": self.look_confidence,
            "bootstrap": self.bootstrap.to_json() if self.bootstrap is not None else None,
        }
        if self.available is not None:
            d["available"] = self.available
        if self.note is not None:
            d["note"] = self.note
        return {**d, **copy.deepcopy(self.extra)}

    @classmethod
    def from_json(cls, d: Any) -> SamplingRecord | None:
        if not isinstance(d, dict):
            return None
        return cls(
            mode=d.get("mode", ""),
            samples=d.get("samples", 0),
            stopped=d.get("stopped", ""),
            steps=tuple(d.get("steps") or ()),
            planned=tuple(d.get("planned") or ()),
            look_confidence=d.get("look_confidence", 0.95),
            bootstrap=Bootstrap.from_json(d.get("bootstrap")),
            available=d.get("available"),
            note=d.get("note"),
            extra=_unknown(cls, d),
        )


@dataclass(frozen=True)
class Avx2Check:
    """The same model measured as an AVX2-only x86 CPU computes it (`--avx2-check`): the CPU
    emulated, the verdict and drop there, and how that CPU's integer kernels compute."""

    cpu: str
    status: str
    drop: float | None
    drop_ci: Interval | None
    samples: int | None
    reason: str | None
    int8_kernels: dict
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        d["drop_ci"] = self.drop_ci.to_json() if self.drop_ci is not None else None
        d["int8_kernels"] = copy.deepcopy(self.int8_kernels)
        return {**d, **copy.deepcopy(self.extra)}

    @classmethod
    def from_json(cls, d: Any) -> Avx2Check | None:
        if not isinstance(d, dict):
            return None
        return cls(
            cpu=d.get("cpu", ""),
            status=d.get("status", ""),
            drop=d.get("drop"),
            drop_ci=Interval.from_json(d.get("drop_ci")),
            samples=d.get("samples"),
            reason=d.get("reason"),
            int8_kernels=dict(d.get("int8_kernels") or {}),
            extra=_unknown(cls, d),
        )


@dataclass(frozen=True)
class Latency:
    """fp32 against int8 timings on the machine that ran the gate (`--bench`; `gate.latency`):
    the method, where it ran (absent when nothing could be timed), each configuration's figures
    (`gate.latency.Timing.to_json`) and notes."""

    method: str
    timings: tuple[dict, ...] = ()
    notes: tuple[str, ...] = ()
    cpu: str | None = None
    int8_kernels: str | None = None
    logical_cores: int | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d: dict = {"method": self.method}
        if self.cpu is not None:  # where it was timed: said whenever anything was
            d.update(cpu=self.cpu, int8_kernels=self.int8_kernels, logical_cores=self.logical_cores)
        d["timings"] = copy.deepcopy([dict(t) for t in self.timings])
        d["notes"] = list(self.notes)
        return {**d, **copy.deepcopy(self.extra)}

    @classmethod
    def from_json(cls, d: Any) -> Latency | None:
        if not isinstance(d, dict):
            return None
        return cls(
            method=d.get("method", ""),
            timings=tuple(d.get("timings") or ()),
            notes=tuple(d.get("notes") or ()),
            cpu=d.get("cpu"),
            int8_kernels=d.get("int8_kernels"),
            logical_cores=d.get("logical_cores"),
            extra=_unknown(cls, d),
        )


@dataclass(frozen=True)
class InputPlan:
    """How the gate draws one input (`inputs.plan_inputs`): dtype, shape, range, and where the
    shape and range came from."""

    name: str
    dtype: str
    shape: tuple
    low: float
    high: float
    source: str  # where the shape/range came from, for the report

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["shape"] = list(self.shape)
        return d


@dataclass(frozen=True)
class EvalInput:
    """One input fed from the entry's eval set: its dtype, the set, one sample's shape."""

    name: str
    dtype: str
    source: str
    shape: tuple

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "source": self.source, "shape": list(self.shape)}


def input_from_json(d: dict) -> InputPlan | EvalInput:
    """One entry of a row's `inputs` read back: a drawn input's plan, or an eval-set input."""
    if "low" in d:
        return InputPlan(d["name"], d["dtype"], tuple(d["shape"]), d["low"], d["high"], d.get("source", ""))
    return EvalInput(d.get("name", ""), d.get("dtype", ""), d.get("source", ""), tuple(d.get("shape") or ()))
