"""`quantgate auto`: from "over budget" (or fp32) to the cheapest int8 sidecar that meets every
budget — searched, judged by the gate's own measurement, written with the registry row edited in
place (`search`, `apply`); `report` renders what was tried."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import provenance
from ..errors import UserError, param
from ..paths import refuse_clobber, write_json
from ..registry import DEFAULT_REGISTRY, Entry, load_registry
from . import apply
from .search import DEFAULT_MINUTES, MAX_FLOAT_NODES, PREFERENCES, Outcome, Search, cleanup, failed

__all__ = ["DEFAULT_MINUTES", "MAX_FLOAT_NODES", "PREFERENCES", "AutoReport", "run_auto"]


@dataclass
class AutoReport:
    """Every model auto looked at, the registry edit, and what was written."""

    registry: Path
    outcomes: list[Outcome]
    diff: str
    dry_run: bool
    written: list[Path] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    run_provenance: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every model has an answer that meets its budgets (a sidecar, or fp32 because
        int8 is slower or not smaller and that was the preference); 1 when one has none; 2 when
        one could not be searched (a corrupt file, a digest mismatch, a graph no quantiser takes)."""
        if any(o.error for o in self.outcomes):
            return 2
        return 0 if all(o.found for o in self.outcomes) else 1

    def to_json(self) -> dict:
        return {
            "schema_version": 1,
            "kind": "auto",
            "registry": str(self.registry),
            "dry_run": self.dry_run,
            "settings": self.settings,
            "models": [o.to_json() for o in self.outcomes],
            "registry_diff": self.diff,
            "written": [str(p) for p in self.written],
            "exit_code": self.exit_code,
            "run_provenance": self.run_provenance,
        }


def _check(prefer: str, max_minutes: float, max_float_nodes: int) -> None:
    """The search's settings, checked before any model is read."""
    if prefer not in PREFERENCES:
        raise UserError(f"unknown '{prefer}'", subject=param("prefer"), fix=f"use one of {', '.join(PREFERENCES)}")
    if not (isinstance(max_minutes, (int, float)) and 0 < max_minutes <= 24 * 60):
        raise UserError(
            f"{max_minutes!r} is not a time the search can have",
            subject=param("max_minutes"),
            fix="give a number of minutes above 0 and at most 1440 (a day)",
        )
    if not (isinstance(max_float_nodes, int) and 0 <= max_float_nodes <= 64):
        raise UserError(
            f"{max_float_nodes!r} is not a count of nodes the search may keep in float",
            subject=param("max_float_nodes"),
            fix="give a whole number from 0 (every weight node in int8) to 64",
        )


def _selected(reg_path: Path, ids: list[str] | None, root) -> list[tuple[Entry, Path | None, Path]]:
    """(entry, its registry, its root) for each id (an id or an .onnx path), else for every entry
    of the registry (the first problem of any entry raised as itself)."""
    from ..explain import resolve_model

    selected = [resolve_model(i, reg_path, root) for i in ids or []]
    if not selected:
        reg = load_registry(reg_path, root)
        selected = [(e, reg.path, reg.root) for e in reg.entries]
        for e in reg.entries:
            if e.problems:
                raise e.problems[0]
    return selected


def _report(
    outcomes: list[Outcome],
    selected: list[tuple[Entry, Path | None, Path]],
    reg_path: Path,
    *,
    dry_run: bool,
    settings: dict,
    argv: list[str] | None,
    report_out: str | Path | None,
) -> AutoReport:
    """The run's report with the registry patch; unless `dry_run`, the chosen sidecars and the
    registry edit written; the report itself at `report_out`."""
    plans = [apply.plan(o, root_of) for o, (_, _, root_of) in zip(outcomes, selected, strict=True)]
    listed = reg_path.is_file() and any(o.entry.index >= 0 for o in outcomes)
    old, new = apply.registry_text(plans, reg_path) if listed else ("", "")
    report = AutoReport(
        registry=reg_path,
        outcomes=outcomes,
        diff=apply.unified_diff(old, new, reg_path),
        dry_run=dry_run,
        settings=settings,
    )
    inputs = {f"{e.id}:fp32": e.onnx_path for e, _, _ in selected if e.onnx_path}
    if listed:
        inputs["registry"] = reg_path
    report.run_provenance = provenance.build(inputs=inputs, root=selected[0][2] if selected else None, argv=argv)
    if not dry_run:
        report.written = apply.write(plans, reg_path, new, old)
    if report_out is not None:
        write_json(Path(report_out), report)
        report.written.append(Path(report_out))
    return report


def run_auto(
    registry: str | Path = DEFAULT_REGISTRY,
    ids: list[str] | None = None,
    *,
    root: str | Path | None = None,
    prefer: str = "cost",
    max_minutes: float = DEFAULT_MINUTES,
    max_float_nodes: int = MAX_FLOAT_NODES,
    dry_run: bool = False,
    seed: int = 0,
    qat: bool = True,
    report_out: str | Path | None = None,
    argv: list[str] | None = None,
    log=None,
    on_outcome=None,
) -> AutoReport:
    """Search each selected entry (ids; none = every entry) and, unless `dry_run`, write the
    chosen sidecars and edit the registry. `on_outcome(outcome)` is called after each model."""
    _check(prefer, max_minutes, max_float_nodes)
    reg_path = Path(registry)
    selected = _selected(reg_path, ids, root)
    if report_out is not None:
        refuse_clobber(report_out, param("report_out"), {"registry": reg_path})
    started = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        for e, reg_of, root_of in selected:
            try:  # one model that cannot be searched is its own error; the others go on
                o = Search(
                    e,
                    reg_of or reg_path,
                    root_of,
                    prefer=prefer,
                    max_minutes=max_minutes,
                    seed=seed,
                    qat=qat,
                    max_float_nodes=max_float_nodes,
                    log=log,
                ).run()
            except UserError as err:
                o = failed(e, err)
            outcomes.append(o)
            if on_outcome is not None:
                on_outcome(o)
        settings = {
            "prefer": prefer,
            "max_minutes": max_minutes,
            "max_float_nodes": max_float_nodes,
            "seed": seed,
            "qat": qat,
            "selection": list(ids or []),
            "seconds": round(time.monotonic() - started, 3),
        }
        return _report(
            outcomes, selected, reg_path, dry_run=dry_run, settings=settings, argv=argv, report_out=report_out
        )
    finally:
        for o in outcomes:
            cleanup(o)


SUGGEST_MINUTES = 5.0


def suggest(results, registry: str | Path, *, root=None, seed: int = 0, max_minutes: float = SUGGEST_MINUTES):
    """For every failing row of a gate run that a registry lists: what `quantgate auto` would
    ship (a dry run: nothing is written), in the row's `why`, and the markdown of each search for
    the job summary. Returns (results with those rows updated, markdown sections)."""
    from dataclasses import replace

    from .report import markdown

    failing = [r.id for r in results.models if r.status == "fail" and not str(r.id).endswith(".onnx")]
    reg = load_registry(registry, root) if failing else None
    ids = [i for i in failing if reg is not None and any(e.id == i for e in reg.entries)]
    if not ids:
        return results, []
    report = run_auto(registry, ids, root=root, seed=seed, max_minutes=max_minutes, dry_run=True, qat=False)
    by_id = {o.entry.id: o for o in report.outcomes}
    rows, sections = [], []
    for r in results.models:
        o = by_id.get(r.id)
        if o is None:
            rows.append(r)
            continue
        why = dict(r.why or {})
        why["auto"] = {"decision": o.decision, "found": o.found, "seconds": round(o.seconds, 1)}
        rows.append(r.with_(why=why))
        sections += [*markdown(o), ""]
    if report.diff:
        sections += ["The registry patch it would apply (`quantgate auto` without `--dry-run`):", "", "```diff"]
        sections += [report.diff.rstrip("\n"), "```", ""]
    return replace(results, models=tuple(rows)), sections
