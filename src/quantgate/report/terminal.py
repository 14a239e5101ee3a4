"""The gate's results on a terminal: one line per row (its tag, figures and reason), what `-v`
adds under it, its warnings at their registry lines, and the closing summary line. Every piece
of data from a registry or a model is shown as one visible line (`text.plain`)."""

from __future__ import annotations

from ..results import Results, Row
from ..text import plain

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
        ci = a.drop_ci
        if a.drop is None:
            shown = plain(a.reason or "no figure")
        else:
            shown = f"drop={a.drop:.6f}" + (f" (95% {ci.low:.6f}-{ci.high:.6f})" if ci else "")
            shown += f" n={a.samples}"
        status = str(a.status).upper()
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
        steps = " -> ".join(str(n) for n in row.sampling.steps)
        level = row.sampling.look_confidence
        looks = f", each look at {level:.1%} (95% over all looks)" if level and level != 0.95 else ""
        out.append(f"        sampled ({row.sampling.mode}): {steps}; stopped: {row.sampling.stopped}{looks}")
    if row.sampling and row.sampling.note:
        out.append(f"        {plain(row.sampling.note)}")
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
    for c in row.latency.timings if row.latency else ():  # each configuration timed
        lo, hi = c["ratio_ci"]
        out.append(
            f"        timed ({c['threads']} thread(s), batch {c['batch']}): fp32 {c['fp32_ms']:.4g} ms, int8 "
            f"{c['int8_ms']:.4g} ms, int8/fp32 {c['ratio']:.2f}x (95% {lo:.2f}-{hi:.2f}), {c['pairs']} pairs"
        )
    out += [f"        {plain(n)}" for n in (row.latency.notes if row.latency else ())]
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
