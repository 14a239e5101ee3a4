"""The table of what `quantgate auto` tried, for the terminal and for markdown."""

from __future__ import annotations

from ..text import plain
from .search import Outcome
from .trial import Tried

HEADER = (
    "#",
    "candidate",
    "settings",
    "drop (95% interval)",
    "n",
    "size",
    "int8/fp32 time",
    "int8 weights",
    "spent",
    "verdict",
)


def _cells(i: int, t: Tried, chosen: bool) -> tuple[str, ...]:
    r = t.row
    if r is not None and r.drop is not None:
        ci = f" ({r.drop_ci.low:.6f}-{r.drop_ci.high:.6f})" if r.drop_ci else ""
        drop = f"{r.drop:.6f}{ci}"
    else:
        drop = "—"
    share = t.coverage.int8_share if t.coverage is not None else None
    verdict = t.status + (" ← chosen" if chosen else "")
    return (
        str(i + 1),
        t.candidate.name,
        t.candidate.settings(),
        drop,
        str(r.samples) if r is not None and r.samples else "—",
        f"×{t.size_ratio:.2f}" if t.size_ratio is not None else "—",
        f"{t.speed_ratio:.2f}x" if t.speed_ratio is not None else "—",
        f"{share:.0%}" if share is not None else "—",
        f"{t.seconds:.1f}s",
        verdict,
    )


def budgets(e) -> str:
    """Every budget the entry is held to, as the gate reads them."""
    from ..gate.judge import budgets_of

    shown = []
    for b in budgets_of(e.budget, e.budget_sqnr_db, e.budget_rmse):
        word = {
            "drop": "drop",
            "sqnr_db": "SQNR",
            "rmse": "RMSE",
            "rel_rmse": "error/spread",
            "gain_offset": "gain/offset",
        }.get(b.figure, b.figure)
        sign = "≤" if b.higher_is_worse else "≥"
        unit = " dB" if b.figure == "sqnr_db" else ""
        shown.append(f"{word} {sign} {b.threshold:g}{unit}")
    if e.min_int8_share is not None:
        shown.append(f"int8 weights ≥ {e.min_int8_share:.0%}")
    return ", ".join(shown)


def lines(o: Outcome) -> list[str]:
    """The terminal block of one model: what it was, the calibration data, the candidates, the
    decision, and each candidate's reason where it did not pass."""
    e = o.entry
    if o.error:
        return [f"auto {plain(e.id)}: {plain(o.error)}"]
    now = f"now {e.mode}" if e.index >= 0 else "a model no registry lists"
    out = [f"auto {plain(e.id)} ({now}; budgets: {budgets(e)}; {o.seconds:.1f}s)"]
    if o.calibration is not None:
        out.append(f"  calibration: {plain(o.calibration.note)}")
    rows = [HEADER] + [_cells(i, t, t is o.chosen) for i, t in enumerate(o.tried)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(HEADER))]
    for r in rows:
        out.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    for i, t in enumerate(o.tried):
        if not t.passed and t.reason:
            out.append(f"  {i + 1}: {plain(t.reason)}")
        for n in t.notes:
            out.append(f"  {i + 1}: {plain(n)}")
    out.append(f"  → {plain(o.decision)}")
    return out


def markdown(o: Outcome) -> list[str]:
    """The same table in markdown (the job summary, the comment's why section)."""

    def esc(s: str) -> str:
        return plain(s).replace("|", "\\|")

    if o.error:
        return [f"**auto {esc(o.entry.id)}** — {esc(o.error)}"]
    out = [f"**auto {esc(o.entry.id)}** — {esc(o.decision)}", ""]
    out.append("| " + " | ".join(HEADER) + " |")
    out.append("|" + "---|" * len(HEADER))
    for i, t in enumerate(o.tried):
        out.append("| " + " | ".join(esc(c) for c in _cells(i, t, t is o.chosen)) + " |")
    if o.calibration is not None and o.calibration.synthetic:
        out += ["", f"Calibration: {esc(o.calibration.note)}"]
    return out
