"""Markdown rendering of a results document (the gate's `--markdown-out`, the job summary); data in it
goes through `quantgate.text`, the same escaping as the pull-request comment."""

from __future__ import annotations

from ..results import Results, Row
from ..text import cell, code

STATUS_ICON = {"fail": "❌ fail", "error": "⚠️ error", "pass": "✅ pass", "skipped": "➖ skipped"}
# A marginal row (its interval never cleared a budget) and a time-capped one carry their own mark
# before the status --on-marginal gave them.
MARGINAL_MARK, TIME_CAP_MARK = "❔", "⏱"


def status_mark(r: Row, *, words: bool = True) -> str:
    """The row's status with its marks: "❔ marginal → ❌ fail", "⏱ ✅ pass", or just "❌" (no words)."""
    icon = STATUS_ICON.get(r.status, r.status)
    shown = icon if words else icon.split(" ")[0]
    if r.marginal:
        shown = (f"{MARGINAL_MARK} marginal → " if words else MARGINAL_MARK) + shown
    if r.time_capped:
        shown = TIME_CAP_MARK + (" time-capped, " if words else "") + shown
    return shown


def loop_speed(r: Row) -> str:
    """The int8/fp32 time per sample the measuring loop saw (rough: `--bench` is the careful one)."""
    t = r.loop_timing
    return "—" if t is None else f"≈{t.ratio:.2f}×"


_ORDER = {"fail": 0, "error": 1, "pass": 2, "skipped": 3}


def fmt_num(v, spec: str = ".6f") -> str:
    return "—" if v is None else format(v, spec)


def fmt_bytes(n) -> str:
    if n is None:
        return "—"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.2f} MiB"


def sorted_rows(results: Results) -> list[Row]:
    """Failing, then erroring, then passing, then skipped; by id within each."""
    return sorted(results.models, key=lambda r: (_ORDER.get(r.status, 9), r.id))


def render_table(rows: list[Row]) -> str:
    head = (
        "| model | status | mode | drop | 95% interval | samples | budget | headroom | PLCC | worst abs err | "
        "SQNR dB | size fp32 → int8 | int8 weights | int8/fp32 time |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    )
    lines = [head]
    for r in rows:
        sqnr = "∞" if r.sqnr_db is None and r.drop == 0.0 else fmt_num(r.sqnr_db, ".1f")
        status = status_mark(r)
        ci = f"{r.drop_ci.low:.6f}–{r.drop_ci.high:.6f}" if r.drop_ci else "—"
        lines.append(
            f"| {code(r.id)} | {status} | {cell(r.mode)} | "
            f"{fmt_num(r.drop)} | {ci} | {r.samples or '—'} | {fmt_num(r.budget, '.4f')} | {fmt_num(r.headroom)} | "
            f"{fmt_num(r.plcc)} | {fmt_num(r.max_abs_error, '.4g')} | {sqnr} | "
            f"{fmt_bytes(r.fp32_bytes)} → {fmt_bytes(r.int8_bytes)} | {share_str(r)} | {loop_speed(r)} |"
        )
    return "\n".join(lines)


def share_str(r: Row) -> str:
    """The share of the fp32 weights the sidecar stores in int8, and its weight nodes: 100% (5/5)."""
    c = r.coverage
    if c is None or c.int8_share is None:
        return "—"
    return f"{c.int8_share:.0%} ({c.int8_nodes}/{c.weight_nodes})"


def why_lines(r: Row) -> list[str]:
    """A failing row's "why": the nodes that add the most error at their output, and the fix."""
    w = r.why or {}
    out = []
    for n in w.get("nodes") or []:
        sq = n.get("sqnr_db")
        at = f"SQNR {sq:.1f} dB at its output" if isinstance(sq, (int, float)) else "error at its output"
        out.append(f"- {code(str(n.get('node')))} ({cell(str(n.get('op_type')))}): {at}")
    if w.get("note"):
        out.append(f"- {cell(str(w['note']))}")
    auto = w.get("auto") or {}
    if auto.get("decision"):
        verb = "found" if auto.get("found") else "tried every candidate"
        out.append(f"- auto ({verb} in a dry run on this machine): {cell(str(auto['decision']))}")
    if w.get("fix"):
        out.append(f"- fix: {code(str(w['fix']))}")
    return out


def render_speed(rows: list[Row]) -> str:
    """The `--bench` timings of every row that has them, with where they were taken, and what
    could not be timed; '' when the gate ran without `--bench`."""
    benched = [r for r in rows if r.latency]
    if not benched:
        return ""
    first = benched[0].latency
    assert first is not None
    said = first.cpu is not None  # a block that timed nothing does not say where
    lines = [
        f"**Speed on this machine** ({cell(first.cpu if said else '?')}, int8 kernels "
        f"{cell(first.int8_kernels if said else '?')}, {first.logical_cores if said else '?'} logical cores; "
        "timings never change a verdict)",
        "",
        "| model | threads | batch | fp32 ms | int8 ms | int8/fp32 | 95% interval | pairs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in benched:
        for t in r.latency.timings if r.latency else ():
            lo, hi = t["ratio_ci"]
            word = {"slower": " slower", "faster": " faster"}.get(t["verdict"], "")
            lines.append(
                f"| {code(r.id)} | {cell(t['threads'])} | {t['batch']} | {t['fp32_ms']:.4g} | {t['int8_ms']:.4g} | "
                f"{t['ratio']:.2f}×{word} | {lo:.2f}–{hi:.2f} | {t['pairs']} |"
            )
    notes = [(r, n) for r in benched for n in (r.latency.notes if r.latency else ())]
    if notes:
        lines += ["", *(f"- {code(r.id)}: {cell(n)}" for r, n in notes)]
    return "\n".join(lines)


def headline(results: Results) -> str:
    c = results.counts
    word = {
        "pass": "✅ quantgate: every gated model is within its budget",
        "fail": "❌ quantgate: a model is over its accuracy budget",
        "error": "⚠️ quantgate: a model could not be judged",
        "nothing": "➖ quantgate: nothing was gated (no entry selected, or every one ships fp32)",
    }[results.verdict]
    marginal = sum(r.marginal for r in results.models)
    failed = f"{c.failed} failed" + (f" ({marginal} marginal)" if marginal else "")
    return f"{word} — {c.passed} passed, {failed}, {c.errored} errored, {c.skipped} skipped"


def at_line(r: Row) -> str:
    """` (registry line N)` after a model's id in a warning, when the row has its entry's line."""
    line = r.registry_line
    return f" (registry line {line})" if isinstance(line, int) and line > 0 else ""


def skipped_line(skipped: list[Row]) -> str:
    """The one line that stands for the fp32 entries (nothing to gate) unless they are listed."""
    n = len(skipped)
    return (
        f"➖ {n} fp32 entr{'y' if n == 1 else 'ies'} not gated (nothing to compare); "
        "`--show-skipped` (action input `show-skipped`) lists them."
    )


def folded(row: Row) -> bool:
    """A skipped row that says nothing more than "fp32": one with a warning (a misspelt
    `quant_mode`, say, which is why it is skipped) is always shown."""
    return row.status == "skipped" and not row.warnings


def split_skipped(rows: list[Row], show_skipped: bool) -> tuple[list[Row], list[Row]]:
    """(rows to show, skipped rows folded into `skipped_line`)."""
    if show_skipped:
        return rows, []
    return [r for r in rows if not folded(r)], [r for r in rows if folded(r)]


def render_markdown(results: Results, *, show_skipped: bool = False) -> str:
    """The results as markdown; fp32 entries are one count line unless `show_skipped`."""
    rows, skipped = split_skipped(sorted_rows(results), show_skipped)
    parts = [f"### {headline(results)}", ""]
    if skipped:
        parts += [skipped_line(skipped), ""]
    if rows:
        parts += [render_table(rows), ""]
    reasons = [r for r in rows if r.reason and (r.status in ("fail", "error") or r.marginal)]
    if reasons:
        parts.append("**Why**")
        parts.append("")
        parts += [f"- {code(r.id)}: {cell(r.reason)}" for r in reasons]
        parts.append("")
    for r in rows:
        lines = why_lines(r) if r.status == "fail" else []
        if lines:
            parts += [f"**{code(r.id)}: the nodes that add the most error, and the fix**", "", *lines, ""]
    warned = [(r, w) for r in rows for w in r.warnings]
    if warned:
        parts += ["**Warnings**", "", *(f"- {code(r.id)}{at_line(r)}: {cell(w)}" for r, w in warned), ""]
    speed = render_speed(rows)
    if speed:
        parts += [speed, ""]
    parts.append(method_line(results) + ".")
    return "\n".join(parts) + "\n"


def method_line(results: Results) -> str:
    """How the figures were measured, in one sentence (the table footer and the comment)."""
    s = results.settings
    eval_sets = [r.id for r in results.models if r.inputs and r.inputs[0].source.startswith("eval set")]
    if s.get("reference_compat"):
        drawn = f"{s.get('samples') or 16} drawn samples, first input and output only (the reference method)"
    elif s.get("samples"):
        drawn = f"{s['samples']} drawn samples"
    else:
        a = s.get("adaptive") or {}
        drawn = (
            f"{a.get('min_samples', '?')}–{a.get('max_samples', '?')} drawn samples, as many as it takes for each "
            "budget to be decided"
        )
    where = f"{drawn} (seed {s.get('seed', '?')})"
    if eval_sets:
        where += f", or its eval set for {', '.join(eval_sets)}"
    policy = s.get("on_marginal", "fail")
    marginal = {
        "fail": "a marginal row (❔: its interval never cleared the budget) counts as a fail",
        "warn": "a marginal row (❔) is judged by its point estimate, with a warning",
        "pass": "a marginal row (❔) is judged by its point estimate",
    }.get(policy, "")
    return (
        f"drop = 1 − PLCC of fp32 vs int8 outputs over {cell(where)}, with its 95% bootstrap interval "
        f"(over all looks); a model fails when a figure is over its budget; {marginal}; ⏱ marks a row the "
        "time cap stopped; int8/fp32 time ≈ from the measuring loop (rough)"
    )
