"""The accuracy gate: registry entries in, one verdict row per model out, and the exit code.

Each model is one self-contained unit of work (`gate_entry`): an error in one never stops the
others. Judged against the budget: the largest drop among the judged outputs (every output,
or the entry's `quant_gate_outputs`); every output's figures are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import provenance
from .errors import UserError, one_line, param
from .inputs import DEFAULT_SYMBOLIC_DIM, draw, plan_inputs
from .metrics import compare
from .onnxio import load_model, session, sig_from_session
from .paths import display, sha256_file, sidecar_path
from .results import OutputFigures, Results, Row
from .registry import DEFAULT_BUDGET, DEFAULT_REGISTRY, Entry, load_registry, producer_command, verify_digest

DEFAULT_SAMPLES = 16
DEFAULT_SEED = 0


@dataclass(frozen=True)
class GateSettings:
    samples: int = DEFAULT_SAMPLES
    seed: int = DEFAULT_SEED
    # The first user's reference gate: first input only, first output only.
    reference_compat: bool = False

    def to_json(self) -> dict:
        return {"samples": self.samples, "seed": self.seed, "reference_compat": self.reference_compat,
                "symbolic_dim_default": DEFAULT_SYMBOLIC_DIM}


def _base_row(e: Entry, root: Path | None) -> Row:
    return Row(id=e.id, mode=e.mode, status="error", budget=e.budget,
               fp32_path=display(e.onnx_path, root) if e.onnx_path else None,
               int8_path=display(e.int8_path, root) if e.int8_path else None,
               registry_line=e.line)


def gate_entry(e: Entry, settings: GateSettings, root: Path | None = None, registry: Path | None = None) -> Row:
    """Measure one model. Never raises for a problem with the model: it becomes the row's reason."""
    row = _base_row(e, root)
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


def _measure(e: Entry, s: GateSettings, m: _Measurement, registry: Path | None) -> None:
    if e.problems:
        raise UserError(str(e.problems[0]))
    fp32, int8 = e.onnx_path, e.int8_path
    reg = registry or Path("registry")
    row = m.row
    for path, what, shown in ((fp32, "fp32 model", row.fp32_path), (int8, "int8 sidecar", row.int8_path)):
        if path is None or not path.is_file():
            fix = ("fix the entry's onnx path" if what == "fp32 model"
                   else f"produce it with {producer_command(e.mode)}")
            raise UserError(f"{what} not found: {shown}; {fix}")
    assert fp32 is not None and int8 is not None
    fp32_bytes, int8_bytes = fp32.stat().st_size, int8.stat().st_size
    m.add(fp32_bytes=fp32_bytes, int8_bytes=int8_bytes,
          size_ratio=round(int8_bytes / fp32_bytes, 6) if fp32_bytes else None)
    verify_digest(fp32, e.sha256, field_name="sha256", registry=reg)
    verify_digest(int8, e.int8_sha256, field_name="int8_sha256", registry=reg)
    _check_not_stale(e, row)
    s_fp = session(fp32, label=row.fp32_path or str(fp32))
    s_q = session(int8, label=row.int8_path or str(int8))
    ins, outs = sig_from_session(s_fp)
    q_ins, q_outs = sig_from_session(s_q)
    if [(i.name, i.dtype) for i in ins] != [(i.name, i.dtype) for i in q_ins]:
        raise UserError(f"{row.int8_path}: its inputs ({', '.join(f'{i.name}:{i.dtype}' for i in q_ins)}) "
                        f"differ from the fp32 model's ({', '.join(f'{i.name}:{i.dtype}' for i in ins)}); "
                        "re-produce the sidecar from this model")
    q_out_names = {o.name for o in q_outs}
    missing = [o.name for o in outs if o.name not in q_out_names]
    if missing:
        raise UserError(f"{row.int8_path}: lacks output(s) {', '.join(missing)} of the fp32 model; re-produce it")
    if s.reference_compat:
        ins, outs = ins[:1], outs[:1]
    plans: list = []
    if e.eval_path is not None:
        feeds = _eval_set_feeds(e, ins)
        m.add(inputs=tuple({"name": s_.name, "dtype": str(s_.dtype),
                            "source": f"eval set {e.raw['quant_eval_set']}",
                            "shape": list(feeds[0][s_.name].shape)} for s_ in ins))
    else:
        model = load_model(fp32, external=False)
        plans = plan_inputs(ins, e.input_spec, model=model, label=f"{reg}: {e.id}")
        m.add(inputs=tuple(p.to_json() for p in plans))
        feeds = draw(plans, s.samples, s.seed)
    m.add(samples=len(feeds))
    judged = set(e.gate_outputs or [o.name for o in outs])
    unknown = sorted(judged - {o.name for o in outs})
    if unknown:
        raise UserError(f"{reg}: {e.id}: quant_gate_outputs names {', '.join(unknown)}, not outputs of the "
                        f"model ({', '.join(o.name for o in outs)})")
    names = [o.name for o in outs]
    acc_fp: dict[str, list] = {n: [] for n in names}
    acc_q: dict[str, list] = {n: [] for n in names}
    for i, feed in enumerate(feeds):
        y_fp = _run(s_fp, names, feed, row.fp32_path, plans, i)
        y_q = _run(s_q, names, feed, row.int8_path, plans, i)
        for n, a, b in zip(names, y_fp, y_q):
            acc_fp[n].append(np.asarray(a).ravel())
            acc_q[n].append(np.asarray(b).ravel())
    figures = []
    worst: OutputFigures | None = None
    for n in names:
        c = compare(np.concatenate(acc_fp[n]), np.concatenate(acc_q[n]))
        out = OutputFigures(name=n, judged=n in judged, plcc=c.plcc, drop=c.drop,
                            max_abs_error=c.max_abs_error, max_abs_error_rel=c.max_abs_error_rel,
                            sqnr_db=c.sqnr_db, nmse=c.nmse, verdict=c.verdict, note=c.note)
        figures.append(out)
        if n in judged and _worse(out, worst):
            worst = out
    assert worst is not None
    m.add(outputs=tuple(figures), judged_output=worst.name, plcc=worst.plcc, drop=worst.drop,
          max_abs_error=worst.max_abs_error, sqnr_db=worst.sqnr_db)
    if worst.verdict == "error":
        m.add(status="error", reason=f"output '{worst.name}': {worst.note}")
    elif worst.verdict == "fail":
        m.add(status="fail", reason=f"output '{worst.name}': {worst.note}")
    else:
        assert worst.drop is not None
        m.add(headroom=e.budget - worst.drop)
        if worst.drop <= e.budget:
            m.add(status="pass", reason=worst.note)
        else:
            m.add(status="fail", reason=f"drop {worst.drop:.6f} exceeds budget {e.budget:g}"
                  + (f" on output '{worst.name}'" if len(judged) > 1 else ""))


def _check_not_stale(e: Entry, row: Row) -> None:
    """A PTQ sidecar made by quantgate records the fp32 digest it came from; one made from another
    fp32 file measures nothing about this one. (QAT sidecars come from the QAT-conditioned
    export, not the registry's fp32 file, so they are not compared.)"""
    from .produce.pipeline import sidecar_source

    if e.mode not in ("dynamic", "static"):
        return
    recorded = sidecar_source(e.int8_path)
    if recorded is None:
        return
    actual = sha256_file(e.onnx_path)
    if recorded != actual:
        raise UserError(f"{row.int8_path} is stale: it was made from an fp32 file with sha256 "
                        f"{recorded[:12]}..., {row.fp32_path} is now {actual[:12]}...; re-produce it "
                        f"with {producer_command(e.mode)}")


def _eval_set_feeds(e: Entry, ins) -> list[dict]:
    """Every sample of the entry's eval set, checked against the model like a calibration set."""
    from .produce import calibration as cal

    if e.input_spec:
        raise UserError(f"{e.id}: quant_eval_set and quant_inputs exclude each other; keep one")
    arrays = cal.read_npz(e.eval_path)
    cal.validate(arrays, ins, label=str(e.raw["quant_eval_set"]))
    return list(cal.feeds(arrays, ins))


_RANK = {"error": 0, "fail": 1, "ok": 2}


def _worse(a: OutputFigures, b: OutputFigures | None) -> bool:
    if b is None:
        return True
    if _RANK[a.verdict] != _RANK[b.verdict]:
        return _RANK[a.verdict] < _RANK[b.verdict]
    return (a.drop or 0.0) > (b.drop or 0.0)


def _run(sess, names, feed, label, plans, i):
    try:
        return sess.run(names, feed)
    except Exception as e:
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in feed.items())
        hint = ("; symbolic dims default to 1 — set quant_inputs.<input>.dims or .shape in the registry"
                if any(p.source == "signature" for p in plans) else "")
        raise UserError(f"{label}: fails on sample {i} with inputs {shapes}: {one_line(e, 240)}{hint}") from None


def adhoc_entry(path: Path, budget: float | None, mode: str = "dynamic") -> Entry:
    """An entry for a model file that no registry lists: gated against its sidecar."""
    p = path.resolve()
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.name
    return Entry(index=-1, raw={}, id=stem, mode=mode, budget=DEFAULT_BUDGET if budget is None else budget,
                 onnx_path=p, int8_path=sidecar_path(p))


def run_gate(registry: str | Path | None = DEFAULT_REGISTRY, ids: list[str] | None = None, *,
             root: str | Path | None = None, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED,
             reference_compat: bool = False, budget: float | None = None,
             argv: list[str] | None = None, progress: Callable[[Row], None] | None = None) -> Results:
    """Gate the selected models (ids or .onnx paths; none = all) and return the results.

    `progress(row)` is called after each model, for a terminal line.
    """
    if samples < 1:
        raise UserError(f"{samples} is not a positive count", subject=param("samples"),
                        fix=f"use e.g. {DEFAULT_SAMPLES}")
    if budget is not None and not 0 <= budget <= 1:
        raise UserError(f"{budget} is outside [0, 1]", subject=param("budget"))
    settings = GateSettings(samples=samples, seed=seed, reference_compat=reference_compat)
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
            selected.append(found or adhoc_entry(Path(sel), budget))
        else:
            if reg is None:
                raise UserError(f"'{sel}': an id needs a registry", fix=f"pass {param('registry')} PATH")
            selected.append(reg.get(sel))
    rows = []
    for e in selected:
        row = gate_entry(e, settings, root_p, reg.path if reg else None)
        rows.append(row)
        if progress:
            progress(row)
    inputs: dict[str, Path] = {"registry": reg.path} if reg else {}
    for e in selected:
        for key, p in (("fp32", e.onnx_path), ("int8", e.int8_path)):
            if p is not None and p.is_file():
                inputs[f"{e.id}:{key}"] = p
    return Results(models=tuple(rows), settings={**settings.to_json(), "selection": ids},
                   run_provenance=provenance.build(inputs=inputs, root=root_p, argv=argv),
                   registry=display(reg.path, root_p) if reg else None)


STATUS_TAG = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "SKIP"}


def line_for(row: Row) -> str:
    """The one-line terminal summary of a row."""
    tag = STATUS_TAG[row.status]
    if row.status == "skipped":
        return f"[{tag:5}] {row.id}: {row.reason}"
    if row.drop is not None:
        figs = (f"drop={row.drop:.6f} budget={row.budget:g} PLCC={row.plcc:.6f} "
                f"max_abs={row.max_abs_error:.4g}")
        sq = row.sqnr_db
        figs += f" SQNR={'inf' if sq is None else f'{sq:.1f}'}dB"
    else:
        figs = f"budget={row.budget:g}"
    tail = f" — {row.reason}" if row.status in ("fail", "error") and row.reason else ""
    return f"[{tag:5}] {row.id} ({row.mode}) {figs}{tail}"


def summary_line(results: Results) -> str:
    """The closing line of a gate run: verdict, counts, the worst drop."""
    c, worst = results.counts, results.worst_drop
    return (f"quantgate: {results.verdict.upper()} — {c.passed} passed, {c.failed} failed, "
            f"{c.errored} errored, {c.skipped} skipped"
            + (f"; worst drop {worst:.6f}" if worst is not None else ""))
