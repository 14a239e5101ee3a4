"""What quantgate hands back, as typed objects: the gate's results (one output's figures, one
model's row, the document) and `Produced`, what every producer returns.

The JSON schema (`schemas/results.schema.json`) stays the wire format: `to_json` writes it and
`from_json` reads it back (a results file handed to `quantgate comment`, say), refusing a
document that does not match the schema with one line. Counts, verdict and exit code are
derived from the rows, never stored beside them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import EXIT_ERROR, EXIT_FAIL, EXIT_NOTHING, EXIT_PASS, UserError, one_line
from .rowblocks import (
    Avx2Check,
    Budgets,
    EvalInput,
    InputPlan,
    Interval,
    Latency,
    SamplingRecord,
    input_from_json,
)

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "error", "skipped")
# What an output's figures say before the budget is applied.
OUTPUT_VERDICTS = ("ok", "fail", "error")


_INTERVALS = ("drop_ci", "sqnr_db_ci", "rmse_ci", "rel_rmse_ci", "gain_offset_ci")


@dataclass(frozen=True)
class OutputFigures:
    """One output of one model: fp32 against int8, each figure with its 95 % interval."""

    name: str
    judged: bool
    verdict: str  # "ok" (judge the figures against the budgets), "fail" (fails whatever the budget), "error"
    note: str | None = None
    plcc: float | None = None
    drop: float | None = None
    drop_ci: Interval | None = None
    max_abs_error: float | None = None
    max_abs_error_rel: float | None = None  # relative to the fp32 output's range
    worst_sample: int | None = None  # the gate input (0-based sample index) with the worst error
    sqnr_db: float | None = None  # None when int8 equals fp32 exactly (infinite)
    sqnr_db_ci: Interval | None = None
    nmse: float | None = None
    rmse: float | None = None
    rmse_ci: Interval | None = None
    rel_rmse: float | None = None  # RMSE against the fp32 output's spread (see gate/estimate.py)
    rel_rmse_ci: Interval | None = None
    gain_offset: float | None = None  # the gain and offset part of the error, on rel_rmse's scale
    gain_offset_ci: Interval | None = None
    samples: int | None = None

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in _INTERVALS:
            d[k] = d[k].to_json() if d[k] is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> OutputFigures:
        kw = _known(cls, d)
        for k in _INTERVALS:
            if k in kw:
                kw[k] = Interval.from_json(kw[k])
        return cls(**kw)


@dataclass(frozen=True)
class Coverage:
    """What a sidecar stores in int8 against its fp32 model's weights (see `quantgate.coverage`)."""

    weight_nodes: int  # compute nodes of the fp32 model that read a weight (rank >= 2)
    int8_nodes: int  # of those, the ones that read an 8-bit weight in the sidecar
    weight_params: int  # elements of the fp32 model's weights
    int8_params: int  # of those, the elements the sidecar stores in 8 bits
    int8_share: float | None  # int8_params / weight_params; None for a model without weights
    float_ops: dict = field(default_factory=dict)  # op type -> count of weight nodes left in float
    float_nodes: tuple[str, ...] = ()  # their names

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["float_ops"] = dict(self.float_ops)
        d["float_nodes"] = list(self.float_nodes)
        return d

    @classmethod
    def from_json(cls, d: Any) -> Coverage | None:
        if d is None:
            return None
        kw = _known(cls, d)
        kw["float_nodes"] = tuple(kw.get("float_nodes") or ())
        return cls(**kw)

    def describe(self) -> str:
        """`int8 weights 98% (5/5 nodes)`: the share of weights in int8 and the weight nodes."""
        share = "n/a" if self.int8_share is None else f"{self.int8_share:.0%}"
        return f"int8 weights {share} ({self.int8_nodes}/{self.weight_nodes} nodes)"


@dataclass(frozen=True)
class LoopTiming:
    """How long fp32 and int8 took per sample inside the gate's own measuring loop: a rough
    speed figure at no extra cost (`--bench` is the careful one). Not the same on every run."""

    fp32_ms: float  # mean wall time per sample
    int8_ms: float
    ratio: float  # int8 / fp32: above 1, int8 is slower
    samples: int  # samples the times are over
    batch: int = 1  # samples per ONNX Runtime call

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, d: Any) -> LoopTiming | None:
        return cls(**_known(cls, d)) if isinstance(d, dict) else None


MARGINAL_POLICIES = ("fail", "warn", "pass")


@dataclass(frozen=True)
class Row:
    """One model's verdict and figures. `drop`, `plcc`, `max_abs_error` and `sqnr_db` are those of
    the judged output that did worst (`judged_output`)."""

    id: str
    mode: str
    status: str
    reason: str | None = None
    budget: float | None = None
    drop: float | None = None
    drop_ci: Interval | None = None
    plcc: float | None = None
    headroom: float | None = None  # budget - drop; negative when over budget
    max_abs_error: float | None = None
    sqnr_db: float | None = None
    judged_output: str | None = None
    marginal: bool = False  # a budget's interval still straddled its threshold when sampling stopped
    on_marginal: str | None = None  # for a marginal row, the policy that set its status (MARGINAL_POLICIES)
    time_capped: bool = False  # the time cap stopped sampling (the count depends on the machine's speed)
    worst_sample: int | None = None  # the sample index of `max_abs_error`
    loop_timing: LoopTiming | None = None  # fp32 and int8 time per sample in the measuring loop
    fp32_path: str | None = None
    int8_path: str | None = None
    fp32_bytes: int | None = None
    int8_bytes: int | None = None
    size_ratio: float | None = None
    registry_line: int | None = None
    samples: int | None = None
    budgets: Budgets = field(default_factory=Budgets)  # every budget judged: figure -> threshold
    sampling: SamplingRecord | None = None
    warnings: tuple[str, ...] = ()
    avx2: Avx2Check | None = None  # the same model measured as an AVX2-only CPU computes it, when asked
    latency: Latency | None = None  # fp32 against int8 timings on this machine, when asked (gate.latency)
    coverage: Coverage | None = None  # what the sidecar stores in int8
    why: dict | None = None  # for a failing row: the nodes that add the most error, and the fix
    inputs: tuple[InputPlan | EvalInput, ...] = ()
    outputs: tuple[OutputFigures, ...] = ()

    def with_(self, **changes: Any) -> Row:
        return replace(self, **changes)

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["drop_ci"] = self.drop_ci.to_json() if self.drop_ci is not None else None
        d["budgets"] = self.budgets.to_json()
        d["sampling"] = self.sampling.to_json() if self.sampling is not None else None
        d["avx2"] = self.avx2.to_json() if self.avx2 is not None else None
        d["latency"] = self.latency.to_json() if self.latency is not None else None
        d["coverage"] = self.coverage.to_json() if self.coverage is not None else None
        d["why"] = copy.deepcopy(self.why)
        d["warnings"] = list(self.warnings)
        d["inputs"] = [i.to_json() for i in self.inputs]
        d["outputs"] = [o.to_json() for o in self.outputs]
        d["loop_timing"] = self.loop_timing.to_json() if self.loop_timing is not None else None
        if self.samples is None:  # not measured: the key is left out, as the schema allows
            del d["samples"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> Row:
        kw = _known(cls, d)
        kw["drop_ci"] = Interval.from_json(d.get("drop_ci"))
        kw["coverage"] = Coverage.from_json(d.get("coverage"))
        kw["warnings"] = tuple(d.get("warnings") or ())
        kw["inputs"] = tuple(input_from_json(i) for i in d.get("inputs") or ())
        kw["budgets"] = Budgets.from_json(d.get("budgets"))
        kw["sampling"] = SamplingRecord.from_json(d.get("sampling"))
        kw["avx2"] = Avx2Check.from_json(d.get("avx2"))
        kw["latency"] = Latency.from_json(d.get("latency"))
        kw["outputs"] = tuple(OutputFigures.from_json(o) for o in d.get("outputs") or ())
        kw["loop_timing"] = LoopTiming.from_json(d.get("loop_timing"))
        return cls(**kw)

    @property
    def outcome(self) -> str:
        """In one word: "passed", "failed", "marginal" (the interval never cleared the budget;
        `status` is what `on_marginal` made of it), "time-capped" (stopped by the time cap before
        the verdict was decided), "error" or "skipped"."""
        if self.status in ("error", "skipped"):
            return self.status
        if self.marginal:
            return "time-capped" if self.time_capped else "marginal"
        return "passed" if self.status == "pass" else "failed"


@dataclass(frozen=True)
class Counts:
    total: int
    passed: int
    failed: int
    errored: int
    skipped: int

    @classmethod
    def of(cls, rows: tuple[Row, ...] | list[Row]) -> Counts:
        by = {s: sum(r.status == s for r in rows) for s in STATUSES}
        return cls(len(rows), by["pass"], by["fail"], by["error"], by["skipped"])

    def to_json(self) -> dict:
        return {
            "pass": self.passed,
            "fail": self.failed,
            "error": self.errored,
            "skipped": self.skipped,
            "total": self.total,
        }


@dataclass(frozen=True)
class Results:
    """The results document of one gate run."""

    models: tuple[Row, ...]
    settings: dict
    run_provenance: dict
    registry: str | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)  # keys a newer writer added; kept on a round trip

    @property
    def counts(self) -> Counts:
        return Counts.of(self.models)

    @property
    def verdict(self) -> str:
        """error, fail, pass, or nothing (no model was gated: none selected, or all fp32)."""
        c = self.counts
        if c.errored:
            return "error"
        if c.failed:
            return "fail"
        return "pass" if c.passed else "nothing"

    @property
    def exit_code(self) -> int:
        return {"error": EXIT_ERROR, "fail": EXIT_FAIL, "pass": EXIT_PASS, "nothing": EXIT_NOTHING}[self.verdict]

    @property
    def worst_drop(self) -> float | None:
        drops = [r.drop for r in self.models if r.drop is not None and r.status != "skipped"]
        return max(drops) if drops else None

    def row(self, model_id: str) -> Row:
        """The row of `model_id`; KeyError naming the ids there are when it has none."""
        for r in self.models:
            if r.id == model_id:
                return r
        raise KeyError(f"no row for {model_id!r}; rows: {', '.join(r.id for r in self.models) or 'none'}")

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "registry": self.registry,
            "counts": self.counts.to_json(),
            "worst_drop": self.worst_drop,
            "settings": copy.deepcopy(self.settings),
            "models": [r.to_json() for r in self.models],
            "run_provenance": copy.deepcopy(self.run_provenance),
            **copy.deepcopy(self.extra),
        }

    @classmethod
    def from_json(cls, doc: Any, *, source: str = "results") -> Results:
        """A results document read back; one `UserError` line when it is not one."""
        import jsonschema

        from .schema import load_schema

        try:
            jsonschema.validate(doc, load_schema("results.schema.json"))
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            raise UserError(
                f"not a quantgate results document ({one_line(e.message, 160)})",
                subject=source,
                field=where,
                fix="pass the file `quantgate gate --json-out` wrote",
            ) from None
        except RecursionError:
            raise UserError(
                "nested too deeply to be a quantgate results document",
                subject=source,
                fix="pass the file `quantgate gate --json-out` wrote",
            ) from None
        known = {
            "schema_version",
            "verdict",
            "exit_code",
            "registry",
            "counts",
            "worst_drop",
            "settings",
            "models",
            "run_provenance",
        }
        return cls(
            models=tuple(Row.from_json(r) for r in doc["models"]),
            settings=dict(doc["settings"]),
            run_provenance=dict(doc["run_provenance"]),
            registry=doc.get("registry"),
            schema_version=doc["schema_version"],
            extra={k: v for k, v in doc.items() if k not in known},
        )

    @classmethod
    def read(cls, path: str | Path) -> Results:
        """Read a results file, or one `UserError` line naming it and the fix. Only a regular file
        of at most `limits.MAX_RESULTS_BYTES` is read, as strict JSON (`strictjson`). A lone
        surrogate (an id a registry may hold, written as its `\\ud800` escape) is kept: every
        renderer shows it escaped."""
        from . import limits, strictjson

        p = Path(path)
        stdin = str(path) == limits.STDIN
        shown = "standard input" if stdin else str(p)
        fix = (
            "pipe one in: quantgate gate --json-out - | quantgate comment --results -"
            if stdin
            else f"write one with `quantgate gate --json-out {p}`"
        )
        try:
            raw = limits.read_input(path, limits.RESULTS_BYTES, what="results")
            text = raw.decode("utf-8")
        except FileNotFoundError:
            raise UserError("no such results file", subject=str(p), fix=fix) from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"not a readable results file ({type(e).__name__})", subject=shown, fix=fix) from None
        try:
            doc = strictjson.loads(text, surrogates=True)  # an id the gate wrote escaped is shown escaped
        except strictjson.BadJSON as e:
            where = f"{shown}:{e.lineno}:{e.colno}" if e.lineno else shown
            what = e.msg if e.fix else f"not JSON ({one_line(e.msg, 120)})"  # refused JSON says why itself
            raise UserError(what, subject=where, field=e.where, fix=f"{e.fix}; {fix}" if e.fix else fix) from None
        return cls.from_json(doc, source=shown)


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(kw_only=True)
class Produced:
    """What every producer hands back — `quantize_dynamic`, `quantize_static`, `run_qat` and the
    calibration-set builder: the file it wrote (`output`, or the file checked) and the JSON report
    that describes it, `run_provenance` included. `to_json()` is that report, so `paths.write_json`
    writes any of them."""

    output: Path
    report: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return self.report
