"""One registry entry through the gate (`gate_entry`): its pair opened and checked
(`pair.open_pair`), measured (`measure`), judged (`judge`), then what a failing row's reader
needs next. Never raises for a problem with the model: it becomes the row's reason. Also what
`validate` reports of the same checks (`check_entry`), and the entry of a model file no
registry lists (`adhoc_entry`).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from .. import coverage, limits
from ..advice import better_command
from ..errors import Problem, UserError, one_line
from ..paths import sidecar_path
from ..registry import DEFAULT_BUDGET, Entry
from ..results import Row
from ..rowblocks import Budgets, Latency
from ..stamp import sidecar_mode
from ..text import plain
from . import latency
from .figures import CONSTANT_EXACT
from .judge import verdict
from .measure import measure
from .pair import ModelPair, RowSoFar, about, base_row, open_pair
from .runner import Watchdog
from .settings import GateSettings


def gate_entry(e: Entry, settings: GateSettings, root: Path | None = None, registry: Path | None = None) -> Row:
    """Measure one model. Never raises for a problem with the model: it becomes the row's reason."""
    row = base_row(e, root)
    if e.problems:  # a malformed entry is never quietly skipped, whatever its mode says
        return row.with_(status="error", reason=str(e.problems[0]))
    if e.mode == "fp32":
        return row.with_(status="skipped", reason="quant_mode fp32: no int8 sidecar ships")
    m = RowSoFar(row)
    try:
        _measure(e, settings, m, registry)
    except UserError as err:
        return m.row.with_(status="error", reason=str(err))
    except Exception as err:  # a model quantgate has not met: keep going, say what happened
        return m.row.with_(status="error", reason=f"unexpected {type(err).__name__}: {one_line(err, 300)}")
    return m.row


def check_entry(e: Entry, registry: Path, root: Path) -> tuple[list[Problem], tuple[str, ...]]:
    """Everything the gate checks about an entry before it runs a sample (digests, staleness,
    the int8 graph, both signatures, quant_inputs, quant_gate_outputs, the eval set), as
    `validate` reports it: problems at their field's line, and the row's warnings."""
    if e.mode == "fp32" or e.problems:
        return [], ()
    m = RowSoFar(base_row(e, root))
    try:
        p = open_pair(e, GateSettings(), m, registry)
        if p.eval_set is not None:  # its values too, read a row at a time as the gate reads them
            with about("quant_eval_set"):
                for _ in p.eval_set.feeds():
                    pass
    except UserError as err:
        key = err.entry_field or "onnx"
        said = err.subject in (str(registry), e.id, f"{registry}: {e.id}")  # the problem's place says it
        text = f"{e.id}: {err.render(subject=not said, fix=False, field=err.field != key)}"
        problem = Problem(str(registry), f"models[{e.index}].{key}", text, plain(err.fix or ""), e.line_of(key))
        return [problem], m.row.warnings
    return [], m.row.warnings


def _measure(e: Entry, s: GateSettings, m: RowSoFar, registry: Path | None) -> None:
    p = open_pair(e, s, m, registry)
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
        # the note is said under -v and in the sampling block, not as a warning on every pinned row
        sampling=measured.sampling.record(note=measured.note or None),
        budgets=Budgets(**{b.figure: b.threshold for b in p.budgets}),
        loop_timing=runner.timing(),
    )
    m.row = verdict(measured, p.judged, p.budgets, e.budget, policy).apply(m.row)
    _coverage_budget(e, m)
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


def _why(e: Entry, p: ModelPair, registry: Path | None) -> dict:
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


def _coverage_budget(e: Entry, m: RowSoFar) -> None:
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


def _bench(p: ModelPair, m: RowSoFar, mode: str) -> None:
    """Time fp32 against int8 (`latency`); a timing that cannot run is a note, never the row's
    error: the verdict is about accuracy."""
    feeds = list(itertools.islice(p.feeds(), latency.LARGE_BATCH if p.batchable else 1))
    try:
        timings, notes = latency.measure(
            p.fp32_path, p.int8_path, p.names, feeds, p.batchable, limits.INPUT_ELEMENTS.value()
        )
    except Exception as err:
        m.add(latency=Latency(method=latency.METHOD, notes=(f"not timed: {one_line(err, 200)}",)))
        return
    block = latency.block(timings, notes)
    speed = latency.speed_warnings(mode, timings, m.row.fp32_bytes, m.row.int8_bytes)
    m.add(latency=block, warnings=m.row.warnings + speed)


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
