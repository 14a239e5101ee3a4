"""One model pair ready to measure (`open_pair`): every check that needs no sample, then both
sessions, what to feed them and what to judge.

The checks have their owners: the files and digests `registry_checks`, the stamp (staleness,
exclusions, mode) `stamp`, both signatures and the judged outputs `inputs`, the eval set
`sampleset`. Here they run in order, each tagged with the entry field it is about (`about`),
and what is learnt on the way (sizes, coverage, warnings) goes into the row so far.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from .. import coverage
from ..advice import better_command, reproduce_command
from ..errors import UserError
from ..inputs import check_same_signature, judged_outputs, plan_inputs, shape_hint, stream
from ..int8_ops import quantized_op_types, saturation_risk
from ..onnxio import TensorSig, external_files_of, file_bytes, load_model, session, sig_from_session
from ..paths import display
from ..registry import Entry
from ..registry_checks import check_digests, check_present
from ..results import Row
from ..rowblocks import EvalInput, InputPlan
from ..sampleset import EvalSet
from ..stamp import check_exclusions, check_made_as, check_not_stale, read_stamp
from . import latency
from .judge import Budget, budgets_of
from .runner import PairRunner, Watchdog, describe_failure
from .settings import GateSettings


def base_row(e: Entry, root: Path | None) -> Row:
    """The row of an entry before anything is measured: an error until a verdict says otherwise."""
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


class RowSoFar:
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
        err.entry_field = err.entry_field or key
        raise


@dataclass
class ModelPair:
    """One model ready to measure: both sessions, what to feed them, what to judge. The seed of
    drawn inputs is the settings' (`GateSettings.seed`), the one place it is held."""

    s_fp: object
    s_q: object
    names: list[str]
    judged: set[str]
    budgets: tuple[Budget, ...]
    plans: list[InputPlan]
    eval_set: EvalSet | None
    fixed: int | None
    mode: str
    settings: GateSettings
    fp32_label: str
    int8_label: str
    fp32_path: Path
    int8_path: Path
    batchable: bool  # every input's first axis is free: the model takes a batch

    def feeds(self) -> Iterator[dict]:
        return self.eval_set.feeds() if self.eval_set is not None else stream(self.plans, self.settings.seed)

    @property
    def available(self) -> int | None:
        """Rows of the eval set; None for drawn samples."""
        return self.eval_set.rows if self.eval_set is not None else None

    def runner(self, watchdog: Watchdog | None = None) -> PairRunner:
        hint = shape_hint(self.plans)
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
        try:
            return self.s_fp.run(self.names, feed)  # type: ignore[attr-defined]
        except Exception as e:
            raise describe_failure(self.fp32_label, e, feed, i, shape_hint(self.plans)) from None


def open_pair(e: Entry, s: GateSettings, m: RowSoFar, registry: Path | None) -> ModelPair:
    """Every check that needs no sample (files, digests, staleness, signatures, the int8 graph),
    then the sessions and the input plan; what was learnt on the way goes into `m`'s row."""
    if e.problems:
        raise e.problems[0]
    reg = registry or Path("registry")
    fp32, int8 = _checked_files(e, m, reg)
    row = m.row
    fp32_label, int8_label = row.fp32_path or str(fp32), row.int8_path or str(int8)
    with about("onnx"):
        s_fp = session(fp32, label=fp32_label)
        ins, outs = sig_from_session(s_fp)
        fp32_graph = load_model(fp32, external=False)  # types and dims only: the weights stay on disk
    with about("quant_mode"):
        s_q = session(int8, label=int8_label)
        cov, said = _check_int8_graph(e, m.row, fp32_graph, reg)
        size = latency.size_warnings(row.fp32_bytes or 0, row.int8_bytes or 0)
        m.add(coverage=cov, warnings=m.row.warnings + said + size)
        q_ins, q_outs = sig_from_session(s_q)
        check_same_signature(ins, outs, q_ins, q_outs, row.int8_path)
    if s.reference_compat:
        ins, outs = ins[:1], outs[:1]
    with about("quant_gate_outputs"):
        judged = judged_outputs(e.gate_outputs, outs, f"{reg}: {e.id}")
    plans, eval_set, fixed, mode = _what_to_feed(e, s, m, ins, fp32_graph, reg)
    budgets = budgets_of(e.budget, e.budget_sqnr_db, e.budget_rmse)
    if s.reference_compat:  # the reference method judged the PLCC drop alone
        budgets = budgets[:1]
    return ModelPair(
        s_fp,
        s_q,
        [o.name for o in outs],
        judged,
        budgets,
        plans,
        eval_set,
        fixed,
        mode,
        s,
        fp32_label,
        int8_label,
        fp32,
        int8,
        bool(ins) and all(i.dims and not isinstance(i.dims[0], int) for i in ins),
    )


def _checked_files(e: Entry, m: RowSoFar, reg: Path) -> tuple[Path, Path]:
    """Both files exist, are the ones the registry's digests name, and the sidecar's stamp says
    it was made from this fp32 file, with these nodes kept in float, in this mode."""
    row = m.row
    check_present(e, row.fp32_path, row.int8_path, reg)
    fp32, int8 = e.onnx_path, e.int8_path
    assert fp32 is not None and int8 is not None
    fp32_data = external_files_of(fp32)  # weights in .onnx.data files: in the size and the stale check
    fp32_bytes, int8_bytes = file_bytes(fp32, fp32_data), file_bytes(int8)
    stamp = read_stamp(int8)
    m.add(
        fp32_bytes=fp32_bytes,
        int8_bytes=int8_bytes,
        size_ratio=round(int8_bytes / fp32_bytes, 6) if fp32_bytes else None,
    )
    check_digests(e, reg)
    with about("onnx"):
        check_not_stale(e, row.int8_path, row.fp32_path, stamp, fp32_data, reg)
    with about("quant_nodes_to_exclude"):
        check_exclusions(e, row.int8_path, stamp, reg)
    with about("quant_mode"):
        check_made_as(e, row.int8_path, stamp, reg)
    return fp32, int8


def _what_to_feed(
    e: Entry, s: GateSettings, m: RowSoFar, ins: list[TensorSig], fp32_graph: onnx.ModelProto, reg: Path
) -> tuple[list[InputPlan], EvalSet | None, int | None, str]:
    """The eval set (checked against the inputs from its headers) or the plan of drawn inputs;
    the sample count when it is fixed; the sampling mode."""
    if e.eval_path is not None:
        with about("quant_eval_set"):
            eval_set = EvalSet.of_entry(e, ins)
        source = f"eval set {e.raw['quant_eval_set']}"
        m.add(inputs=tuple(EvalInput(i.name, str(i.dtype), source, tuple(eval_set.shape(i))) for i in ins))
        return [], eval_set, None, "eval set"
    with about("quant_inputs"):
        plans = plan_inputs(ins, e.input_spec, model=fp32_graph, label=f"{reg}: {e.id}")
    m.add(inputs=tuple(plans))
    fixed = s.fixed_samples(e.gate_samples)
    return plans, None, fixed, "adaptive" if fixed is None else "fixed"


def _check_int8_graph(e: Entry, row: Row, fp32_graph, reg: Path) -> tuple[coverage.Coverage, tuple[str, ...]]:
    """Refuse a sidecar with no int8 op (a copy of the fp32 file measures nothing); say what it
    stores in int8 (`coverage`), and warn when that is too little to be worth shipping or when
    its integer kernels can compute differently on other x86 CPUs."""
    assert e.int8_path is not None
    q = load_model(e.int8_path, what="int8 sidecar")
    if not quantized_op_types(q):
        raise UserError(
            f"{row.int8_path}: has no quantised operator, so it is not an int8 model (a copy of the fp32 file?)",
            fix=f"produce it with {reproduce_command(e, reg)}",
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
