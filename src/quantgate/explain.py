"""`quantgate explain`: which quantised nodes of a model add the error, worded for the terminal
(the figures come from `diagnose`)."""

from __future__ import annotations

from pathlib import Path

from .diagnose import PROBE_SAMPLES, Explanation, explain_model
from .errors import UserError
from .registry import DEFAULT_REGISTRY, Entry, load_registry
from .text import plain


def resolve_model(model: str, registry: str | Path | None, root) -> tuple[Entry, Path | None, Path]:
    """The entry `model` names (an id, or an .onnx path, listed or not), its registry (None for
    a model no registry lists) and the repository root."""
    from .gate.entry import adhoc_entry
    from .paths import find_repo_root

    reg_path = Path(registry) if registry is not None else None
    if model.endswith(".onnx"):
        reg = load_registry(reg_path, root) if reg_path is not None and reg_path.is_file() else None
        found = reg.find_by_file(Path(model)) if reg else None
        if found is not None:
            assert reg is not None
            return found, reg.path, reg.root
        e = adhoc_entry(Path(model), None)
        return e, None, Path(root).resolve() if root else find_repo_root(Path(model))
    if reg_path is None:
        raise UserError(f"'{model}': an id needs a registry", fix="pass --registry PATH")
    reg = load_registry(reg_path, root)
    e = reg.get(model)
    if e.problems:
        raise e.problems[0]
    return e, reg.path, reg.root


def explain_entry(
    model: str,
    registry: str | Path | None = DEFAULT_REGISTRY,
    *,
    root=None,
    top: int | None = 10,
    mode: str | None = None,
    samples: int = PROBE_SAMPLES,
    seed: int = 0,
    max_seconds: float | None = 300.0,
) -> Explanation:
    """Rank the weight nodes of a model by the error they add (see `diagnose.explain_model`)."""
    from .auto.calibration import calibration_for
    from .auto.candidates import remaker

    e, reg, root_p = resolve_model(model, registry, root)
    remade = mode or (e.mode if e.mode in ("dynamic", "static") else "static")
    data = calibration_for(e, reg or Path(DEFAULT_REGISTRY), root_p, seed) if remade == "static" else None
    ex = explain_model(
        e,
        reg,
        remake=remaker(remade, e, data),
        mode=remade,
        top=top,
        samples=samples,
        seed=seed,
        max_seconds=max_seconds,
    )
    if data is not None:
        ex.notes.insert(0, f"calibrated on {data.note}")
    if e.mode == "qat" and mode is None:
        ex.notes.insert(
            0, "a QAT entry: the figures are for static PTQ of its fp32 file (re-training per node would take hours)"
        )
    return ex


def lines(ex: Explanation) -> list[str]:
    """The terminal table: baseline drop, then one line per node, most helpful to keep in float first."""
    out = [f"explain {plain(ex.id)} ({ex.mode} PTQ re-made with quantgate's defaults; budget {ex.budget:g})"]
    out.append(f"  scored on {plain(ex.probe)}")
    base = f"  drop of the re-made sidecar: {ex.baseline_drop:.6f}"
    if ex.excluded:
        base += f" (already in float: {', '.join(plain(x) for x in ex.excluded)})"
    if ex.shipped_drop is not None:
        base += f"; the shipped sidecar on the same samples: {ex.shipped_drop:.6f}"
    out.append(base)
    if ex.coverage is not None:
        out.append(f"  {ex.coverage.describe()}")
    header = ("node", "op", "weights", "SQNR at output", "error added", "drop kept in float", "change")
    rows = [header]
    for n in ex.nodes:
        change = "—" if n.gain is None else f"{-n.gain:+.6f}"
        rows.append(
            (
                plain(n.node),
                n.op_type,
                f"{n.params:,}",
                "in float" if n.in_float else ("—" if n.sqnr_db is None else f"{n.sqnr_db:.1f} dB"),
                "—" if n.added is None else f"{n.added:.3g}",
                "—" if n.drop_kept is None else f"{n.drop_kept:.6f}",
                change + (" (floor)" if n.floor and n.gain is not None else ""),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if any(n.floor for n in ex.nodes):
        out.append(
            "  (floor): keeping that node in float would leave under the coverage floor of weights in int8; "
            "auto never does"
        )
    for note in ex.notes:
        out.append(f"  note: {plain(note)}")
    helps = [n for n in ex.nodes if n.gain is not None and n.gain > 0 and n.drop_kept is not None]
    best = next((n for n in helps if not n.floor), None)
    if best is not None and best.drop_kept is not None:
        fits = "within" if best.drop_kept <= ex.budget else "still over"
        out.append(
            f"  keeping {plain(best.node)} in float lowers the drop to {best.drop_kept:.6f} ({fits} the budget); "
            f"{plain(ex.command)} searches combinations and judges them with the gate"
        )
    elif helps:
        out.append(
            f"  only nodes under the coverage floor lower the drop; {plain(ex.command)} tries the other modes and QAT"
        )
    return out
