"""The pull-request comment body: a results document in, one markdown string out.

Layout (narrow enough for a phone): a hidden marker naming the registry, the verdict as the
first visible line, one table of models (failing and erroring first), the reasons of those
that did not pass, a collapsible block with provenance and the commands that reproduce the run,
and a link to the workflow run. The body never exceeds `max_chars` (GitHub refuses comments
over 65,536 characters): rows are dropped from the end of the table (passing first, as they
sort last) and the reader is pointed at the job summary, which always has the full table.

Every text that comes from the registry or the run (ids, reasons, paths) goes through
`quantgate.text` (escaped for a table cell, `@mentions` neutralised), as in every other markdown
output, so a comment never pings anybody.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping

from ..results import Interval, Results, Row
from ..text import cell, code, plain, shell_word
from .markdown import (
    MARGINAL_MARK,
    TIME_CAP_MARK,
    at_line,
    loop_speed,
    method_line,
    skipped_line,
    sorted_rows,
    split_skipped,
    why_lines,
)

GITHUB_LIMIT = 65536
# GitHub counts characters; we count UTF-8 bytes, which is never less, so we stay under.
DEFAULT_MAX = GITHUB_LIMIT - 512
MARKER_RE = re.compile(r"^<!-- quantgate:comment registry=([A-Za-z0-9._/\-]{1,200}|-) -->$")
ICON = {"fail": "❌", "error": "⚠️", "pass": "✅", "skipped": "➖"}


def marker(registry: str | None) -> str:
    """The hidden first line that finds this registry's comment again."""
    reg = registry or "-"
    if not re.fullmatch(r"[A-Za-z0-9._/\-]{1,200}", reg):
        reg = re.sub(r"[^A-Za-z0-9._/\-]", "_", reg)[:200] or "-"
    return f"<!-- quantgate:comment registry={reg} -->"


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def num(v, places: int = 4) -> str:
    """Compact: 0.0649, 1.2e-07, −0.0549 (a real minus sign reads better on a phone)."""
    if v is None:
        return "—"
    if v == 0:
        return "0"
    s = f"{v:.{places}f}" if abs(v) >= 10**-places else f"{v:.1e}"
    return s.replace("-", "−", 1) if s.startswith("-") else s


def interval_str(ci: Interval | None) -> str:
    """A 95 % interval in at most 13 characters: 0.0067–0.0096, or 2.0–2.1e-05 for small drops."""
    if ci is None:
        return "—"
    lo, hi = ci.low, ci.high
    if hi >= 1e-3 or hi <= 0:
        return f"{lo:.4f}–{hi:.4f}"
    e = math.floor(math.log10(hi))
    return f"{lo / 10**e:.1f}–{hi / 10**e:.1f}e{e:03d}"


def budget_str(v) -> str:
    return "—" if v is None else f"{v:g}"


def err_str(v) -> str:
    return "—" if v is None else f"{v:.3g}"


def size_str(fp32, int8) -> str:
    if fp32 is None and int8 is None:
        return "—"

    def kib(n):
        if n is None:
            return "?"
        return f"{n / 1024:.0f}" if n >= 100 * 1024 else f"{n / 1024:.1f}"

    return f"{kib(fp32)}→{kib(int8)}"


def run_url(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    repo, run = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not (repo and run and re.fullmatch(r"[0-9]+", run) and re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo)):
        return None
    url = f"{server}/{repo}/actions/runs/{run}"
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    if attempt and attempt.isdigit() and attempt != "1":
        url += f"/attempts/{attempt}"
    return url


def headline(results: Results) -> str:
    """The first visible line: verdict, then counts in the reader's words, then the worst drop."""
    c = results.counts.to_json()
    verdict = results.verdict
    head = {
        "pass": "✅ **quantgate: pass**",
        "fail": "❌ **quantgate: fail**",
        "error": "⚠️ **quantgate: error**",
        "nothing": "➖ **quantgate: nothing gated**",
    }.get(verdict, f"quantgate: {cell(verdict)}")
    parts = [
        f"{c.get(k, 0)} {w}"
        for k, w in (
            ("fail", "over budget"),
            ("error", "could not be judged"),
            ("pass", "within budget"),
            ("skipped", "skipped (fp32)"),
        )
        if c.get(k)
    ]
    marginal = sum(r.marginal for r in results.models)
    if marginal:  # not shown within budget nor over it: what --on-marginal counted them as is above
        parts.append(f"{marginal} marginal {MARGINAL_MARK}")
    capped = sum(r.time_capped for r in results.models)
    if capped:
        parts.append(f"{capped} time-capped {TIME_CAP_MARK}")
    worst = results.worst_drop
    tail = f"; worst drop {num(worst)}" if worst is not None else ""
    return f"{head} — {', '.join(parts) or 'no models'}{tail}"


TABLE_HEAD = "| | model | mode | drop | 95% CI | n | budget | max err | KiB fp32→int8 | int8 w. | int8/fp32 time |"
TABLE_RULE = "|:-:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"


def table_head(timed: bool = False) -> str:
    return TABLE_HEAD + "\n" + TABLE_RULE


def speed_str(r: Row) -> str:
    """With `--bench`, its careful figure (1 thread, batch 1); else ≈ the measuring loop's."""
    from ..gate.latency import headline

    t = headline(list(r.latency.timings) if r.latency else [])
    return loop_speed(r) if t is None else f"{t['ratio']:.2f}×"


def icon(r: Row) -> str:
    """✅ ❌ ⚠️ ➖; ❔ before it for a marginal row, ⏱ for one the time cap stopped."""
    return (TIME_CAP_MARK if r.time_capped else "") + (MARGINAL_MARK if r.marginal else "") + ICON.get(r.status, "?")


def table_row(r: Row, timed: bool = False) -> str:
    n = f"{r.samples}" if r.samples else "—"
    return (
        f"| {icon(r)} | {code(r.id[:80])} | "
        f"{cell(r.mode)} | {num(r.drop)} | {interval_str(r.drop_ci)} | {n} | "
        f"{budget_str(r.budget)} | {err_str(r.max_abs_error)} | "
        f"{size_str(r.fp32_bytes, r.int8_bytes)} | {_share(r)} | {speed_str(r)} |"
    )


def _share(r: Row) -> str:
    c = r.coverage
    return "—" if c is None or c.int8_share is None else f"{c.int8_share:.0%}"


def why_block(r: Row) -> list[str]:
    """A failing row's collapsible "why": the nodes that add the most error, and the command
    that searches for a sidecar within budget."""
    lines = why_lines(r)
    if not lines:
        return []
    return [f"<details><summary>Why {code(r.id[:80])} fails, and the fix</summary>", "", *lines, "", "</details>"]


def reason_line(r: Row, limit: int = 300) -> str:
    return f"- {icon(r)} {code(r.id[:80])}: {cell(_cut(r.reason, limit))}"


MAX_WARNINGS = 10  # warning lines in the comment; the job summary has every one


def warning_line(r: Row, warning: str, limit: int = 300) -> str:
    return f"- ⚠️ {code(r.id[:80])}{at_line(r)}: {cell(_cut(warning, limit))}"


def _cut(text: str | None, limit: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reproduce_commands(results: Results, image: str | None = None) -> list[str]:
    """`git checkout`, `quantgate gate ...` and `docker run ...` for this run, one line each
    (`shell_word`: a name with a line break cannot end the code block they sit in). quantgate is
    not on the package index: the pip line installs it from the repository the run recorded
    (`run_provenance.quantgate_source`) at the ref that ran; where that was not recorded the
    lines say so instead of naming a repository."""
    args, selection = _gate_args(results)
    prov = results.run_provenance
    version = plain((prov.get("versions") or {}).get("quantgate") or "0.0.0")  # one line, like every word here
    source = prov.get("quantgate_source") or {}
    repo = source.get("repository")
    repo = str(repo) if isinstance(repo, str) and re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo) else None
    ref = str(source.get("ref") or f"v{version}")
    tag = ref if re.fullmatch(r"v\d+(\.\d+\.\d+)?", ref) else f"v{version}"  # what the release workflow pushes
    image = image or os.environ.get("QUANTGATE_IMAGE") or (f"ghcr.io/{repo.lower()}:{tag}" if repo else None)
    cmds = []
    commit = (prov.get("git") or {}).get("commit")
    if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{7,40}", commit):
        cmds.append(f"git checkout {commit}")
    gate = " ".join(shell_word(a) for a in ["gate", *args, *selection])
    if repo:
        pkg = shell_word(f"quantgate @ git+https://github.com/{repo}@{ref}")
        cmds.append(f"pip install {pkg} && quantgate {gate}")
    else:
        cmds.append(f"# quantgate {version}; where this copy was installed from was not recorded")
        cmds.append(f"quantgate {gate}")
    # The image's entrypoint takes the action's inputs as options (no `gate` word, --models).
    action = [*args, *(["--models", models_input(selection)] if selection else [])]
    if image is None:
        cmds.append(f"# the image: docker build -t quantgate . in a quantgate {version} checkout")
        image = "quantgate"
    cmds.append(
        f'docker run --rm -v "$PWD:/github/workspace" -w /github/workspace '
        f"{shell_word(image)} {' '.join(shell_word(a) for a in action)}"
    )
    return cmds


def models_input(ids: list[str]) -> str:
    """The action's `models` input (`--models`) that selects exactly `ids`: separated by commas,
    or a JSON array when an id holds a separator (a space, a comma) or starts like one
    (`quantgate.action.settings.parse_ids` reads both)."""
    if all(i and not re.search(r"[\s,\[\]\"]", i) for i in ids):
        return ",".join(ids)
    return json.dumps(ids)


def _gate_args(results: Results) -> tuple[list[str], list[str]]:
    """(registry and settings options, model selection) as the results document records them."""
    s = results.settings
    args = []
    if results.registry:
        args += ["--registry", results.registry]
    if s.get("samples"):
        args += ["--samples", str(s["samples"])]
    args += ["--seed", str(s.get("seed", 0))]
    if s.get("on_marginal") not in (None, "fail") and not s.get("reference_compat"):
        args += ["--on-marginal", str(s["on_marginal"])]
    return args, [str(x) for x in s.get("selection") or []]


def provenance_block(results: Results, image: str | None = None) -> str:
    prov = results.run_provenance
    v = prov.get("versions") or {}
    cpu = prov.get("cpu") or {}
    osi = prov.get("os") or {}
    git = prov.get("git") or {}
    feats = ", ".join(cpu.get("int8_features") or []) or "none detected"
    k = cpu.get("int8_kernels") or {}
    lines = ["<details><summary>Provenance and how to reproduce</summary>", ""]
    if v:
        lines.append("- versions: " + ", ".join(f"{cell(k)} {cell(val)}" for k, val in v.items()))
    if cpu:
        lines.append(
            f"- CPU: {cell(cpu.get('model', '?'))} ({cell(cpu.get('arch', '?'))}, "
            f"{cpu.get('logical_cores', '?')} cores); int8 features: {cell(feats)}"
            + (f"; int8 kernels: {cell(k.get('family', '?'))}, u8×s8 {cell(k.get('u8s8', '?'))}" if k else "")
        )
    if osi:
        lines.append(f"- OS: {cell(osi.get('platform') or osi.get('system') or '?')}")
    if git.get("commit"):
        dirty = " (dirty)" if git.get("dirty") else ""
        lines.append(f"- commit: {code(str(git['commit'])[:40])}{dirty}")
    lines.append("- " + cell(method_line(results)))
    if any(r.latency and r.latency.timings for r in results.models):
        lines.append(
            "- int8/fp32 time: median of back-to-back runs at 1 thread, smallest batch timed, on the CPU above "
            "(never part of the verdict); the job summary has every configuration timed"
        )
    lines += ["", "Reproduce locally:", "", "```sh", *reproduce_commands(results, image), "```", "", "</details>"]
    return "\n".join(lines)


def render_comment(
    results: Results,
    *,
    max_chars: int = DEFAULT_MAX,
    env: Mapping[str, str] | None = None,
    image: str | None = None,
    show_skipped: bool = False,
) -> str:
    """The whole comment, at most `max_chars` UTF-8 bytes; fp32 entries are one count line
    unless `show_skipped`."""
    url = run_url(env)
    rows, skipped = split_skipped(sorted_rows(results), show_skipped)
    top = [marker(results.registry), headline(results), ""]
    reg = results.registry
    if reg:
        top += [f"Registry {code(reg)}", ""]
    if skipped:
        top += [skipped_line(skipped), ""]
    tail = [provenance_block(results, image), ""]
    if url:
        tail.append(f"[Workflow run]({url}) · full table in its job summary")
    else:
        tail.append("Full table in the job summary.")
    full = _assemble(top, rows, len(rows), tail, url)
    if size(full) <= max_chars:
        return full
    # Too long: keep as many rows as fit (failing first, as sorted), binary search.
    lo, hi = 0, len(rows)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(_assemble(top, rows, mid, tail, url)) <= max_chars:
            lo = mid
        else:
            hi = mid - 1
    body = _assemble(top, rows, lo, tail, url)
    if size(body) <= max_chars:
        return body
    # Even no rows do not fit (huge provenance): the headline and the pointer.
    body = "\n".join([*top, _pointer(len(rows), rows, url)]) + "\n"
    return body if size(body) <= max_chars else body.encode("utf-8")[:max_chars].decode("utf-8", "ignore")


def _pointer(cut: int, rows: list[Row], url: str | None) -> str:
    passing = sum(r.status in ("pass", "skipped") for r in rows)
    where = f"the [job summary]({url})" if url else "the job summary"
    return (
        f"_{cut} more model(s) not shown ({passing} of them passing or skipped) to stay under "
        f"GitHub's comment limit; {where} has the full table._"
    )


def _assemble(top: list[str], rows: list[Row], n: int, tail: list[str], url: str | None) -> str:
    shown = rows[:n]
    parts = list(top)
    if shown:
        parts += [table_head(), *(table_row(r) for r in shown)]
    if n < len(rows):
        parts += ["", _pointer(len(rows) - n, rows[n:], url)]
    reasons = [r for r in shown if (r.status in ("fail", "error") or r.marginal) and r.reason]
    if reasons:
        parts += ["", *(reason_line(r) for r in reasons)]
    for r in shown:
        block = why_block(r) if r.status == "fail" else []
        if block:
            parts += ["", *block]
    warned = [warning_line(r, w) for r in shown for w in r.warnings]
    if warned:
        parts += ["", *warned[:MAX_WARNINGS]]
        if len(warned) > MAX_WARNINGS:
            parts.append(f"- _{len(warned) - MAX_WARNINGS} more warning(s) in the job summary_")
    parts += ["", *tail]
    return "\n".join(parts) + "\n"
