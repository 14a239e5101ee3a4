"""The accuracy gate: registry entries in, one verdict row per model out, and the exit code.

Each model is one self-contained unit of work (`gate_entry`): an error in one never stops the
others. Every output's figures are reported; the judged outputs (every output, or the entry's
`quant_gate_outputs`) are held against the model's budgets (see `judge`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import coverage, limits, provenance
from ..advice import better_command, reproduce_command
from ..errors import UserError, one_line, param
from ..inputs import InputPlan, plan_inputs, stream
from ..int8_ops import quantized_op_types, saturation_risk
from ..limits import STDIN
from ..onnxio import external_files_of, file_bytes, load_model, session, sig_from_session
from ..paths import display, sidecar_path
from ..registry import (
    DEFAULT_BUDGET,
    DEFAULT_REGISTRY,
    Entry,
    Problem,
    load_registry,
    verify_digest,
)
from ..results import Results, Row
from ..sampleset import EvalSet
from ..stamp import check_exclusions, check_made_as, check_not_stale, read_stamp, sidecar_mode
from ..text import plain
from . import emulate, latency
from .judge import Budget, budgets_of, verdict
from .measure import CONSTANT_EXACT, measure
from .runner import PairRunner, Watchdog, describe_failure
from .settings import DEFAULT_SEED, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, MODEL_TIMEOUT, GateSettings


def _base_row(e: Entry, root: Path | None) -> Row:
    return Row(
        id=e.id,
        mode=e.mode,
        status="error",
        budget=e.budget,
        fp32_path=display(e.onnx_path, root) if e.onnx_path else None,
        int8_path=display(e.int8_path, root) if e.int8_path else None,
        registry_line=e.line,
        warnings=tuple(f"{w.where}{f' (line {w.line})' if w.line else ''}: {w.message}" for w in e.warnings),
    )


def gate_entry(e: Entry, settings: GateSettings, root: Path | None = None, registry: Path | None = None) -> Row:
    """Measure one model. Never raises for a problem with the model: it becomes the row's reason."""
    row = _base_row(e, root)
    if e.problems:  # a malformed entry is never quietly skipped, whatever its mode says
        return row.with_(status="error", reason=str(e.problems[0]))
    if e.mode == "fp32":
        return row.with_(status="skipped", reason="quant_mode fp32: no int8 sidecar ships")
    m = _Measurement(row)
    try:
        _measure(e, settings, m, registry)
    except UserError as err:
        return m.row.with_(status="error", reason=str(err))
    except Exception as err:  # a model quantgate has not met: keep going, say what happened
        return m.row.with_(status="error", reason=f"unexpected {type(err).__name__}: {one_line(err, 300)}")
    return m.row


class _Measurement:
    """The row as far as the measurement got: an error part-way keeps what was already known."""

    def __init__(self, row: Row):
        self.row = row

    def add(self, **changes) -> None:
        self.row = self.row.with_(**changes)


@contextlib.contextmanager
def about(key: str) -> Iterator[None]:
    """A `UserError` raised inside is about the entry's field `key` (validate reports it at that
    field's line); the first tag wins."""
    try:
        yield
    except UserError as err:
        if not hasattr(err, "registry_field"):
            err.registry_field = key  # type: ignore[attr-defined]
        raise


def tagged(key: str, message: str) -> UserError:
    err = UserError(message)
    err.registry_field = key  # type: ignore[attr-defined]
    return err


def check_entry(e: Entry, registry: Path, root: Path) -> tuple[list[Problem], tuple[str, ...]]:
    """Everything the gate checks about an entry before it runs a sample (digests, staleness,
    the int8 graph, both signatures, quant_inputs, quant_gate_outputs, the eval set), as
    `validate` reports it: problems at their field's line, and the row's warnings."""
    if e.mode == "fp32" or e.problems:
        return [], ()
    m = _Measurement(_base_row(e, root))
    try:
        p = prepare(e, GateSettings(), m, registry)
        if p.eval_set is not None:  # its values too, read a row at a time as the gate reads them
            with about("quant_eval_set"):
                for _ in p.eval_set.feeds():
                    pass
    except UserError as err:
        key = getattr(err, "registry_field", "onnx")
        text = str(err)
        for said in (f"{registry}: ", f"{e.id}: "):  # the Problem names both already
            text = text.removeprefix(said)
        where = f"models[{e.index}].{key}"
        return [Problem(str(registry), where, f"{e.id}: {text}", "", e.line_of(key))], m.row.warnings
    return [], m.row.warnings


@dataclass
class Prepared:
    """One model ready to measure: both sessions, what to feed them, what to judge."""

    s_fp: Any
    s_q: Any
    names: list[str]
    judged: set[str]
    budgets: tuple[Budget, ...]
    plans: list[InputPlan]
    eval_set: EvalSet | None
    fixed: int | None
    mode: str
    seed: int
    fp32_label: str
    int8_label: str
    fp32_path: Path
    int8_path: Path
    batchable: bool  # every input's first axis is free: the model takes a batch

    def feeds(self) -> Iterator[dict]:
        return self.eval_set.feeds() if self.eval_set is not None else stream(self.plans, self.seed)

    @property
    def available(self) -> int | None:
        """Rows of the eval set; None for drawn samples."""
        return self.eval_set.rows if self.eval_set is not None else None

    def runner(self, watchdog: Watchdog | None = None) -> PairRunner:
        hint = _shape_hint(self.plans)
        return PairRunner(
            self.s_fp,
            self.s_q,
            self.names,
            (self.fp32_label, self.int8_label),
            self.batchable,
            lambda label, e, feed, i: describe_failure(label, e, feed, i, hint),
            watchdog,
        )

    def run_fp32(self, feed: dict, i: int) -> list:
        return _run(self.s_fp, self.names, feed, self.fp32_label, self.plans, i)

    def run_int8(self, feed: dict, i: int) -> list:
        return _run(self.s_q, self.names, feed, self.int8_label, self.plans, i)


def _measure(e: Entry, s: GateSettings, m: _Measurement, registry: Path | None) -> None:
    p = prepare(e, s, m, registry)
    policy = s.marginal_policy
    with Watchdog(s.model_timeout) as dog:
        runner = p.runner(dog)
        measured = measure(
            runner.run,
            p.names,
            p.judged,
            p.feeds(),
            p.budgets,
            s,
            fixed=p.fixed,
            mode=p.mode,
            keep_values=s.reference_compat,
            batch=1 if s.reference_compat else runner.batch_for,
            available=p.available,
        )
    m.add(
        samples=measured.sampling.samples,
        sampling=measured.sampling.to_json(),
        budgets={b.figure: b.threshold for b in p.budgets},
        loop_timing=runner.timing(),
    )
    m.add(**verdict(measured, p.judged, p.budgets, e.budget, policy))
    _coverage_budget(e, m)
    if measured.note:  # said under -v and in the sampling block, not as a warning on every pinned row
        m.add(sampling={**(m.row.sampling or {}), "note": measured.note})
    if m.row.marginal and policy == "warn" and m.row.status == "pass":
        m.add(warnings=(*m.row.warnings, f"passed on its point estimate alone: {m.row.reason}"))
    if m.row.status == "fail" and not m.row.marginal:  # a marginal row's fix is more data: its reason says which
        m.add(why=_why(e, p, registry))
    judged = [o for o in measured.outputs if o.name in p.judged]
    if judged and all((o.note or "").startswith(CONSTANT_EXACT) for o in judged):  # a pass that measured nothing
        said = (
            f"every judged output is the same on all {measured.sampling.samples} gate inputs, so int8 matches "
            "fp32 trivially: the inputs may not exercise the model; set the quant_inputs ranges it is meant "
            "for, or an eval set (quant_eval_set)"
        )
        m.add(warnings=(*m.row.warnings, said))
    if s.bench:
        _bench(p, m, e.mode)


def _why(e: Entry, p: Prepared, registry: Path | None) -> dict:
    """What a failing row's reader needs next: the nodes that add the most error at their output
    (on the gate's first samples; never an error of the row when it cannot be worked out) and
    the command that searches for a sidecar within budget."""
    from .. import diagnose

    out: dict = {"fix": better_command(e, registry or Path("registry")), "method": "error at each node's output"}
    try:
        feeds = list(itertools.islice(p.feeds(), diagnose.ACTIVATION_SAMPLES))
        out["nodes"] = diagnose.why_nodes(p.fp32_path, p.int8_path, feeds)
    except Exception as err:  # a diagnosis, not the verdict: say why it is missing
        out["nodes"] = []
        out["note"] = f"nodes not ranked: {one_line(err, 160)}"
    return out


def _coverage_budget(e: Entry, m: _Measurement) -> None:
    """quant_min_int8_weight_share: a sidecar that stores less of its weights in int8 fails,
    whatever its drop."""
    cov = m.row.coverage
    if e.min_int8_share is None or cov is None or cov.int8_share is None or cov.int8_share >= e.min_int8_share:
        return
    said = (
        f"{cov.int8_share:.1%} of the weights in int8, under quant_min_int8_weight_share {e.min_int8_share:g} "
        f"(left in float: {coverage.float_ops_text(cov)})"
    )
    reason = f"{m.row.reason}; {said}" if m.row.status == "fail" and m.row.reason else said
    m.add(status="fail", reason=reason)


def _bench(p: Prepared, m: _Measurement, mode: str) -> None:
    """Time fp32 against int8 (`latency`); a timing that cannot run is a note, never the row's
    error: the verdict is about accuracy."""
    feeds = list(itertools.islice(p.feeds(), latency.LARGE_BATCH if p.batchable else 1))
    try:
        timings, notes = latency.measure(
            p.fp32_path, p.int8_path, p.names, feeds, p.batchable, limits.INPUT_ELEMENTS.value()
        )
    except Exception as err:
        m.add(latency={"method": latency.METHOD, "timings": [], "notes": [f"not timed: {one_line(err, 200)}"]})
        return
    block = latency.block(timings, notes)
    speed = latency.speed_warnings(mode, timings, m.row.fp32_bytes, m.row.int8_bytes)
    m.add(latency=block, warnings=m.row.warnings + speed)


def prepare(e: Entry, s: GateSettings, m: _Measurement, registry: Path | None) -> Prepared:
    """Every check that needs no sample (files, digests, staleness, signatures, the int8 graph),
    then the sessions and the input plan; what was learnt on the way goes into `m`'s row."""
    if e.problems:
        raise UserError(str(e.problems[0]))
    fp32, int8 = e.onnx_path, e.int8_path
    reg = registry or Path("registry")
    row = m.row
    for path, what, shown in ((fp32, "fp32 model", row.fp32_path), (int8, "int8 sidecar", row.int8_path)):
        if path is None or not path.is_file():
            fix = (
                "fix the entry's onnx path" if what == "fp32 model" else f"produce it with {reproduce_command(e, reg)}"
            )
            if e.index < 0 and what != "fp32 model":  # a file no registry lists: its mode is a guess
                fix = "produce it with quantgate ptq-dynamic (MatMul/Gemm models) or quantgate ptq-static"
            raise UserError(f"{what} not found: {shown}; {fix}")
    assert fp32 is not None and int8 is not None
    fp32_data = external_files_of(fp32)  # weights in .onnx.data files: in the size and the stale check
    fp32_bytes, int8_bytes = file_bytes(fp32, fp32_data), file_bytes(int8)
    stamp = read_stamp(int8)
    m.add(
        fp32_bytes=fp32_bytes,
        int8_bytes=int8_bytes,
        size_ratio=round(int8_bytes / fp32_bytes, 6) if fp32_bytes else None,
    )
    with about("sha256"):
        verify_digest(fp32, e.sha256, field_name="sha256", registry=reg)
    with about("int8_sha256"):
        verify_digest(int8, e.int8_sha256, field_name="int8_sha256", registry=reg)
    with about("onnx"):
        check_not_stale(e, row.int8_path, row.fp32_path, stamp, fp32_data, reg)
    with about("quant_nodes_to_exclude"):
        check_exclusions(e, row.int8_path, stamp, reg)
    with about("quant_mode"):
        check_made_as(e, row.int8_path, stamp, reg)
    fp32_label, int8_label = row.fp32_path or str(fp32), row.int8_path or str(int8)
    with about("onnx"):
        s_fp = session(fp32, label=fp32_label)
        ins, outs = sig_from_session(s_fp)
        fp32_graph = load_model(fp32, external=False)  # types and dims only: the weights stay on disk
    with about("quant_mode"):
        s_q = session(int8, label=int8_label)
        cov, said = _check_int8_graph(e, m.row, fp32_graph, reg)
        m.add(coverage=cov, warnings=m.row.warnings + said + latency.size_warnings(fp32_bytes, int8_bytes))
        q_ins, q_outs = sig_from_session(s_q)
    if [(i.name, i.dtype) for i in ins] != [(i.name, i.dtype) for i in q_ins]:
        raise tagged(
            "quant_mode",
            f"{row.int8_path}: its inputs ({', '.join(f'{i.name}:{i.dtype}' for i in q_ins)}) "
            f"differ from the fp32 model's ({', '.join(f'{i.name}:{i.dtype}' for i in ins)}); "
            "re-produce the sidecar from this model",
        )
    q_out_names = {o.name for o in q_outs}
    missing = [o.name for o in outs if o.name not in q_out_names]
    if missing:
        raise tagged(
            "quant_mode", f"{row.int8_path}: lacks output(s) {', '.join(missing)} of the fp32 model; re-produce it"
        )
    if s.reference_compat:
        ins, outs = ins[:1], outs[:1]
    judged = set(e.gate_outputs or [o.name for o in outs])
    unknown = sorted(judged - {o.name for o in outs})
    if unknown:
        raise tagged(
            "quant_gate_outputs",
            f"{reg}: {e.id}: quant_gate_outputs names {', '.join(unknown)}, not outputs of the "
            f"model ({', '.join(o.name for o in outs)})",
        )
    plans: list[InputPlan] = []
    eval_set = None
    if e.eval_path is not None:
        with about("quant_eval_set"):
            eval_set = EvalSet.of_entry(e, ins)
        source = f"eval set {e.raw['quant_eval_set']}"
        m.add(
            inputs=tuple(
                {"name": i.name, "dtype": str(i.dtype), "source": source, "shape": eval_set.shape(i)} for i in ins
            )
        )
        fixed: int | None = None
        mode = "eval set"
    else:
        with about("quant_inputs"):
            plans = plan_inputs(ins, e.input_spec, model=fp32_graph, label=f"{reg}: {e.id}")
        m.add(inputs=tuple(p.to_json() for p in plans))
        fixed = s.fixed_samples(e.gate_samples)
        mode = "adaptive" if fixed is None else "fixed"
    budgets = budgets_of(e.budget, e.budget_sqnr_db, e.budget_rmse)
    if s.reference_compat:  # the reference method judged the PLCC drop alone
        budgets = budgets[:1]
    return Prepared(
        s_fp,
        s_q,
        [o.name for o in outs],
        judged,
        budgets,
        plans,
        eval_set,
        fixed,
        mode,
        s.seed,
        fp32_label,
        int8_label,
        fp32,
        int8,
        bool(ins) and all(i.dims and not isinstance(i.dims[0], int) for i in ins),
    )


def _check_int8_graph(e: Entry, row: Row, fp32_graph, reg: Path) -> tuple[coverage.Coverage, tuple[str, ...]]:
    """Refuse a sidecar with no int8 op (a copy of the fp32 file measures nothing); say what it
    stores in int8 (`coverage`), and warn when that is too little to be worth shipping or when
    its integer kernels can compute differently on other x86 CPUs."""
    assert e.int8_path is not None
    q = load_model(e.int8_path, what="int8 sidecar")
    if not quantized_op_types(q):
        raise UserError(
            f"{row.int8_path}: has no quantised operator, so it is not an int8 model (a copy of "
            f"the fp32 file?); produce it with {reproduce_command(e, reg)}"
        )
    cov = coverage.measure(fp32_graph, q)
    ratio = row.size_ratio
    fix = f"{better_command(e, reg)} finds a mode that quantises them"
    if cov.float_ops and e.mode == "dynamic":
        fix = f"static PTQ quantises them: {better_command(e, reg)} tries it against the budget"
    said = tuple(f"{row.int8_path}: {w}" for w in coverage.problems(cov, ratio, fix))
    risk = saturation_risk(q)
    if risk:
        said += (
            f"{row.int8_path}: {risk.describe()}; re-produce it with 7-bit weights: {reproduce_command(e, reg, cov)}",
        )
    return cov, said


def _run(sess, names, feed, label, plans, i):
    try:
        return sess.run(names, feed)
    except Exception as e:
        raise describe_failure(label, e, feed, i, _shape_hint(plans)) from None


def _shape_hint(plans: list[InputPlan]) -> str:
    if any(p.source == "signature" for p in plans):
        return "; symbolic dims default to 1 — set quant_inputs.<input>.dims or .shape in the registry"
    return ""


def adhoc_entry(path: Path, budget: float | None, mode: str | None = None) -> Entry:
    """An entry for a model file that no registry lists: gated against its sidecar, in the mode
    the sidecar was made in (`_sidecar_mode`)."""
    try:
        p = path.resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL byte in the name
        raise UserError(
            f"cannot be resolved ({type(e).__name__})", subject=str(path), fix="name a model file"
        ) from None
    if p.name.endswith(".int8.onnx"):
        fp32 = p.name.removesuffix(".int8.onnx") + ".onnx"
        raise UserError(
            "is an int8 sidecar; the gate compares it with its fp32 model",
            subject=str(path),
            fix=f"name the fp32 model ({fp32}) or its registry id",
        )
    if not p.is_file():
        raise UserError("no such model file", subject=str(path), fix="name a .onnx file, or a registry id")
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.name
    int8 = sidecar_path(p)
    if mode is None:
        mode = sidecar_mode(int8) if int8.is_file() else "dynamic"
    return Entry(
        index=-1,
        raw={},
        id=stem,
        mode=mode,
        budget=DEFAULT_BUDGET if budget is None else budget,
        onnx_path=p,
        int8_path=int8,
    )


def run_gate(
    registry: str | Path | None = DEFAULT_REGISTRY,
    ids: list[str] | None = None,
    *,
    root: str | Path | None = None,
    samples: int | None = None,
    seed: int = DEFAULT_SEED,
    reference_compat: bool = False,
    budget: float | None = None,
    max_samples: int = MAX_SAMPLES,
    max_seconds: float = MAX_SECONDS,
    avx2_check: bool = False,
    bench: bool = False,
    on_marginal: str | None = None,
    model_timeout: float = MODEL_TIMEOUT,
    argv: list[str] | None = None,
    progress: Callable[[Row, int, int], None] | None = None,
    starting: Callable[[str, int, int], None] | None = None,
) -> Results:
    """Gate the selected models (ids or .onnx paths; none = all) and return the results.

    `samples` fixes the sample count of every model; None samples adaptively, up to
    `max_samples` and `max_seconds` per model. `avx2_check` also measures each model as an
    AVX2-only x86 CPU computes it (under qemu-x86_64 -cpu Haswell). `bench` also times fp32
    against int8 on this machine (`gate.latency`). `on_marginal` ("fail", "warn", "pass") says
    what a row whose interval still straddles a budget counts as (default fail; pass under
    `reference_compat`); `model_timeout` (seconds) turns a model still running into an error
    row. `progress(row, i, n)` is called after each model, for a terminal line; `starting(id, k,
    m)` before each of the m models that will be measured (not the fp32 entries skipped).
    """
    if budget is not None and not (isinstance(budget, (int, float)) and 0 <= budget <= 1):
        raise UserError(f"{budget} is outside [0, 1]", subject=param("budget"))
    settings = GateSettings(
        samples=samples,
        seed=seed,
        reference_compat=reference_compat,
        max_samples=max_samples,
        min_samples=min(MIN_SAMPLES, max_samples),
        max_seconds=max_seconds,
        avx2_check=avx2_check,
        bench=bench,
        on_marginal=on_marginal,
        model_timeout=model_timeout,
    )
    ids = [str(i) for i in (ids or [])]
    reg = None
    reg_path = Path(registry) if registry is not None else None
    needs_registry = not ids or any(not str(i).endswith(".onnx") for i in ids)
    if reg_path is not None and (needs_registry or reg_path.exists()):
        reg = load_registry(reg_path, root)
    root_p = reg.root if reg else (Path(root).resolve() if root else Path.cwd())
    selected: list[Entry] = []
    if not ids:
        assert reg is not None
        selected = list(reg.entries)
    for sel in ids:
        if str(sel).endswith(".onnx"):
            found = reg.find_by_file(Path(sel)) if reg else None
            if found is None and reg is not None and not Path(sel).exists():
                for e in reg.entries:
                    if e.onnx_path is not None and e.onnx_path.name == Path(sel).name:
                        listed = display(e.onnx_path, Path.cwd())  # as the user would type it from here
                        raise UserError(
                            f"no such file here; the registry lists {listed} as '{e.id}'",
                            subject=sel,
                            fix=f"name the id '{e.id}' or the file's path",
                        )
            selected.append(found or adhoc_entry(Path(sel), budget))
        else:
            if reg is None:
                raise UserError(f"'{sel}': an id needs a registry", fix=f"pass {param('registry')} PATH")
            selected.append(reg.get(sel))
    if avx2_check:
        emulate.qemu_path()  # before any model is measured: one line when qemu-user is missing
    rows = []
    measured = [id(e) for e in selected if e.problems or e.mode != "fp32"]  # gate_entry skips the rest
    for e in selected:
        if starting and id(e) in measured:
            starting(e.id, measured.index(id(e)) + 1, len(measured))
        row = gate_entry(e, settings, root_p, reg.path if reg else None)
        rows.append(row)
        if progress and not avx2_check:
            progress(row, len(rows), len(selected))
    if avx2_check:
        rows = _with_avx2(rows, selected, settings, reg.path if reg else None, root_p)
        for i, row in enumerate(rows):
            if progress:
                progress(row, i + 1, len(rows))
    inputs: dict[str, Path] = {"registry": reg.path} if reg else {}
    for e in selected:
        if e.problems:  # a refused entry's files are never read, not even to be digested
            continue
        for key, p in (("fp32", e.onnx_path), ("int8", e.int8_path)):
            if p is not None and p.is_file():
                inputs[f"{e.id}:{key}"] = p
    return Results(
        models=tuple(rows),
        settings={**settings.to_json(), "selection": ids},
        run_provenance=provenance.build(inputs=inputs, root=root_p, argv=argv),
        registry=(STDIN if str(reg.path) == STDIN else display(reg.path, root_p)) if reg else None,
    )


def _with_avx2(
    rows: list[Row], selected: list[Entry], settings: GateSettings, registry: Path | None, root: Path
) -> list[Row]:
    """Each measured row with its `avx2` block: the same model on the same samples, its int8 side
    computed as an AVX2-only x86 CPU computes it."""
    prepared: dict[int, Prepared] = {}
    plan = []
    for i, (e, r) in enumerate(zip(selected, rows, strict=True)):
        if r.status not in ("pass", "fail") or r.samples is None:
            continue
        p = prepare(e, replace(settings, samples=r.samples), _Measurement(_base_row(e, root)), registry)
        prepared[i] = p
        if p.eval_set is not None:
            assert e.eval_path is not None
            feeds = {"kind": "eval", "path": str(e.eval_path), "inputs": [i.name for i in p.eval_set.inputs]}
        else:
            feeds = {"kind": "drawn", "plans": [pl.to_json() for pl in p.plans]}
        plan.append(
            {
                "index": i,
                "int8": str(e.int8_path),
                "feeds": feeds,
                "seed": settings.seed,
                "samples": r.samples,
                "names": p.names,
            }
        )
    found, kernels = emulate.int8_outputs(plan) if plan else ({}, {})
    out = []
    for i, (e, r) in enumerate(zip(selected, rows, strict=True)):
        if i in prepared:
            emulated = _emulated_row(e, r, prepared[i], found[i], settings, root)
            block, warning = emulate.summary(r, emulated, kernels)
            r = r.with_(avx2=block, warnings=r.warnings + ((warning,) if warning else ()))
        out.append(r)
    return out


def _emulated_row(e: Entry, native: Row, p: Prepared, outputs: dict | str, settings: GateSettings, root: Path) -> Row:
    base = _base_row(e, root)
    if isinstance(outputs, str):
        return base.with_(status="error", reason=outputs)
    n = native.samples or 0

    def run_pair(feeds: list[dict], first: int) -> tuple[list[list], list[list]]:
        fp = [p.run_fp32(feed, first + j) for j, feed in enumerate(feeds)]
        return (
            [[f[k] for f in fp] for k in range(len(p.names))],
            [[outputs[name][first + j] for j in range(len(feeds))] for name in p.names],
        )

    measured = measure(
        run_pair,
        p.names,
        p.judged,
        p.feeds(),
        p.budgets,
        settings,
        fixed=n,
        mode=p.mode,
        keep_values=settings.reference_compat,
        level=(native.sampling or {}).get("look_confidence"),
    )
    judged = verdict(measured, p.judged, p.budgets, e.budget, settings.marginal_policy)
    return base.with_(samples=measured.sampling.samples, **judged)


STATUS_TAG = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "SKIP"}
# A marginal row's own tag (its status, what --on-marginal made of it, follows in the line).
MARGINAL_TAG = "MARG"


def tag_for(row: Row) -> str:
    return MARGINAL_TAG if row.marginal else STATUS_TAG[row.status]


def line_for(row: Row) -> str:
    """The one-line terminal summary of a row (data in it shown as one visible line)."""
    tag = tag_for(row)
    ident = plain(row.id)
    if row.status == "skipped":
        return f"[{tag:5}] {ident}: {plain(row.reason)}"
    if row.drop is not None:
        ci = f" (95% {row.drop_ci.low:.6f}-{row.drop_ci.high:.6f})" if row.drop_ci else ""
        capped = " time-capped" if row.time_capped else ""
        figs = (
            f"drop={row.drop:.6f}{ci} budget={row.budget:g} n={row.samples}{capped} PLCC={row.plcc:.6f} "
            f"max_abs={row.max_abs_error:.4g}"
        )
        sq = row.sqnr_db
        figs += f" SQNR={'inf' if sq is None else f'{sq:.1f}'}dB"
        if row.coverage is not None and row.coverage.int8_share is not None:
            figs += f" int8w={row.coverage.int8_share:.0%}"
        if row.loop_timing is not None:
            figs += f" int8/fp32≈{row.loop_timing.ratio:.2f}x"
    else:
        figs = f"budget={row.budget:g}"
    if row.marginal:
        figs += f" → {row.status.upper()}"
    shown = row.status in ("fail", "error") or row.marginal
    tail = f" — {plain(row.reason)}" if shown and row.reason else ""
    return f"[{tag:5}] {ident} ({plain(row.mode)}) {figs}{tail}"


def row_lines(row: Row, registry: str | None = None) -> list[str]:
    """The row's line, its figures as an AVX2-only CPU computes them (with `--avx2-check`), then
    one indented line per warning, at the entry's registry line (`registry:LINE: warning: ...`)
    when `registry` is given."""
    lines = [line_for(row)]
    a = row.avx2
    if a:
        ci = a.get("drop_ci")
        if a.get("drop") is None:
            shown = plain(a.get("reason") or "no figure")
        else:
            shown = f"drop={a['drop']:.6f}" + (f" (95% {ci[0]:.6f}-{ci[1]:.6f})" if ci else "")
            shown += f" n={a.get('samples')}"
        status = str(a.get("status")).upper()
        lines.append(f"        as an AVX2-only CPU computes it (emulated): {status} {shown}")
    if row.status == "fail" and row.why:
        for n in row.why.get("nodes") or []:
            sq = n.get("sqnr_db")
            at = f"SQNR {sq:.1f} dB at its output" if isinstance(sq, (int, float)) else "error at its output"
            lines.append(f"        adds error: {plain(str(n.get('node')))} ({plain(str(n.get('op_type')))}), {at}")
        if row.why.get("fix"):
            lines.append(f"        fix: {plain(str(row.why['fix']))}")
    at = f"{plain(registry)}:{row.registry_line}: " if registry and row.registry_line else ""
    return lines + [f"        {at}warning: {plain(w)}" for w in row.warnings]


def detail_lines(row: Row) -> list[str]:
    """What -v adds under a row: each output's figures with their intervals, and how it was sampled."""

    def ci(v) -> str:
        return f" (95% {v.low:.6g}-{v.high:.6g})" if v is not None else ""

    def fig(v, spec: str = ".6g") -> str:
        return "n/a" if v is None else format(v, spec)

    out = []
    for o in row.outputs:
        judged = "" if o.judged else ", not judged"
        if o.verdict != "ok" and o.drop is None:
            out.append(f"        output '{plain(o.name)}'{judged}: {o.verdict}: {plain(o.note)}")
            continue
        out.append(
            f"        output '{plain(o.name)}'{judged}: drop={fig(o.drop)}{ci(o.drop_ci)} "
            f"SQNR={fig(o.sqnr_db, '.2f')}dB{ci(o.sqnr_db_ci)} RMSE={fig(o.rmse)} "
            f"error/spread={fig(o.rel_rmse, '.3g')} gain/offset={fig(o.gain_offset, '.3g')}{ci(o.gain_offset_ci)} "
            f"max_abs={fig(o.max_abs_error, '.4g')}"
        )
    if row.sampling:
        steps = " -> ".join(str(n) for n in row.sampling.get("steps", []))
        level = row.sampling.get("look_confidence")
        looks = f", each look at {level:.1%} (95% over all looks)" if level and level != 0.95 else ""
        out.append(
            f"        sampled ({row.sampling.get('mode')}): {steps}; stopped: {row.sampling.get('stopped')}{looks}"
        )
    if row.sampling and row.sampling.get("note"):
        out.append(f"        {plain(row.sampling['note'])}")
    if row.worst_sample is not None and row.max_abs_error:
        out.append(f"        worst single error {row.max_abs_error:.4g} on gate input (sample) {row.worst_sample}")
    t = row.loop_timing
    if t is not None:
        out.append(
            f"        measuring loop: fp32 {t.fp32_ms:.4g} ms, int8 {t.int8_ms:.4g} ms per sample over {t.samples} "
            f"samples (batch {t.batch}), int8/fp32 {t.ratio:.2f}x (rough; --bench times it carefully)"
        )
    if row.budgets:
        out.append("        budgets: " + ", ".join(f"{k} {v:g}" for k, v in row.budgets.items()))
    for t in (row.latency or {}).get("timings", []):
        lo, hi = t["ratio_ci"]
        out.append(
            f"        timed ({t['threads']} thread(s), batch {t['batch']}): fp32 {t['fp32_ms']:.4g} ms, int8 "
            f"{t['int8_ms']:.4g} ms, int8/fp32 {t['ratio']:.2f}x (95% {lo:.2f}-{hi:.2f}), {t['pairs']} pairs"
        )
    out += [f"        {plain(n)}" for n in (row.latency or {}).get("notes", [])]
    return out


def summary_line(results: Results) -> str:
    """The closing line of a gate run: verdict, counts, the worst drop."""
    c, worst = results.counts, results.worst_drop
    if results.verdict == "nothing":
        what = f"{c.skipped} entry(ies) selected, every one fp32" if c.total else "no entry selected"
        return f"quantgate: NOTHING GATED — {what}; exit code 3"
    marginal = sum(r.marginal for r in results.models)
    capped = sum(r.time_capped for r in results.models)
    policy = results.settings.get("on_marginal", "fail")
    counted = "counted as failed" if policy == "fail" else f"judged by the point estimate (--on-marginal {policy})"
    extra = [f"{marginal} marginal, {counted}"] if marginal else []
    extra += [f"{capped} time-capped"] if capped else []
    return (
        f"quantgate: {results.verdict.upper()} — {c.passed} passed, {c.failed} failed, "
        f"{c.errored} errored, {c.skipped} skipped"
        + (f" ({', '.join(extra)})" if extra else "")
        + (f"; worst drop {worst:.6f}" if worst is not None else "")
    )
