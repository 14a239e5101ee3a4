"""GitHub Actions sinks for a results document: step outputs, the job summary, annotations.

Nothing here runs a model, reads the runner's inputs or calls the GitHub API; `quantgate.action.sinks`
puts these pieces where the runner reads them.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from ..results import Results, Row
from ..text import plain

# GitHub shows at most this many error (and warning) annotations per step.
MAX_ANNOTATIONS = 10
# The job summary of one step may hold at most 1 MiB.
SUMMARY_LIMIT = 1024 * 1024

# --- workflow commands (annotations) ------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF must be escaped."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: like a message, plus ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, **props) -> str:
    """`::kind k=v,...::message`; properties whose value is None are left out. Controls other than
    line breaks (which the runner's escaping carries) are shown as escapes (`quantgate.text.plain`)."""

    def safe(v) -> str:
        return "\n".join(plain(part) for part in str(v).split("\n"))

    shown = ",".join(f"{k}={escape_property(safe(v))}" for k, v in props.items() if v is not None)
    return f"::{kind}{' ' + shown if shown else ''}::{escape_data(safe(message))}"


def _num(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def annotation_for(row: Row, registry_file: str | None) -> str:
    """The `::error` line of one failing or erroring model, pointing at its registry entry."""
    if row.status == "fail":
        title = f"quantgate: {row.id} is over its accuracy budget"
        if row.drop is not None:
            detail = f"drop {_num(row.drop, '.6f')} > budget {_num(row.budget, '.4f')} (PLCC {_num(row.plcc, '.6f')})"
        else:  # judged failed without a drop figure, e.g. an output quantisation collapsed
            detail = row.reason or f"over budget {_num(row.budget, '.4f')}"
        message = f"{row.id} ({row.mode}): {detail}"
    else:
        title = f"quantgate: {row.id} could not be judged"
        message = f"{row.id} ({row.mode}): {row.reason or 'no reason given'}"
    line = row.registry_line
    return workflow_command(
        "error", message, file=registry_file, line=line if isinstance(line, int) and line > 0 else None, title=title
    )


def annotation_lines(results: Results, registry_file: str | None, *, limit: int = MAX_ANNOTATIONS) -> list[str]:
    """One `::error` per failing/erroring model (failures first), at most `limit` of them;
    when more models are affected a `::notice` says how many were not annotated. Then one
    `::warning` per model warning (slower or larger int8, saturation risk), at most `limit`."""
    bad = [r for r in results.models if r.status in ("fail", "error")]
    bad.sort(key=lambda r: (r.status != "fail", r.registry_line or 0, r.id))
    lines = [annotation_for(r, registry_file) for r in bad[:limit]]
    if len(bad) > limit:
        lines.append(
            workflow_command(
                "notice",
                f"{len(bad)} models failed or could not be judged; only the first {limit} "
                "are annotated (GitHub shows at most 10 per step). The job summary lists all.",
                title="quantgate: more models than annotations",
            )
        )
    warned = sorted(
        ((r, w) for r in results.models for w in r.warnings), key=lambda rw: (rw[0].registry_line or 0, rw[0].id)
    )
    for r, w in warned[:limit]:
        line = r.registry_line
        lines.append(
            workflow_command(
                "warning",
                f"{r.id}: {w}",
                file=registry_file,
                line=line if isinstance(line, int) and line > 0 else None,
                title=f"quantgate: {r.id}",
            )
        )
    if len(warned) > limit:
        lines.append(
            workflow_command(
                "notice",
                f"{len(warned)} warnings; only the first {limit} are annotated (GitHub shows at most 10 per "
                "step). The job summary lists all.",
                title="quantgate: more warnings than annotations",
            )
        )
    return lines


# --- step outputs -------------------------------------------------------------------------

OUTPUT_NAMES = (
    "verdict",
    "passed",
    "failed",
    "errored",
    "skipped",
    "total",
    "worst_drop",
    "results_path",
    "markdown_path",
)
# set by the entrypoint from `quantgate comment --outcome-out`: what happened, and the link
COMMENT_OUTPUT_NAMES = ("comment", "comment_url")
PLOTS_OUTPUT_NAMES = ("plots_path",)


def outputs_from_results(results: Results | None, *, results_path: str = "", markdown_path: str = "") -> dict[str, str]:
    """The action's outputs as strings; an unusable run (no results) reports verdict `error`."""
    if results is None:
        out = dict.fromkeys(OUTPUT_NAMES, "")
        out.update(verdict="error", passed="0", failed="0", errored="0", skipped="0", total="0")
        return out
    c = results.counts
    worst = results.worst_drop
    return {
        "verdict": results.verdict,
        "passed": str(c.passed),
        "failed": str(c.failed),
        "errored": str(c.errored),
        "skipped": str(c.skipped),
        "total": str(c.total),
        "worst_drop": "" if worst is None else repr(float(worst)),
        "results_path": results_path,
        "markdown_path": markdown_path,
    }


def format_output(name: str, value: str) -> str:
    """One `$GITHUB_OUTPUT` record: `name=value`, or a heredoc when the value spans lines."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise ValueError(f"not an output name: {name!r}")
    value = str(value)
    if "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    while True:  # a delimiter the value cannot contain, as the runner's toolkit does it
        delim = f"ghadelimiter_{uuid.uuid4()}"
        if delim not in value:
            break
    return f"{name}<<{delim}\n{value}\n{delim}\n"


def write_outputs(path: str | os.PathLike, outputs: dict[str, str]) -> None:
    """Append records to the runner's output file (it is shared by the step: append, never replace)."""
    text = "".join(format_output(k, v) for k, v in outputs.items())
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


# --- job summary --------------------------------------------------------------------------


def fit_summary(markdown: str, room: int, note: str) -> tuple[str, bool]:
    """`markdown` cut at a line boundary so that it and `note` fit in `room` bytes."""
    data = markdown if markdown.endswith("\n") else markdown + "\n"
    if len(data.encode("utf-8")) <= room:
        return data, False
    tail = f"\n{note}\n"
    budget = room - len(tail.encode("utf-8"))
    kept, used = [], 0
    for line in data.splitlines(keepends=True):
        n = len(line.encode("utf-8"))
        if used + n > budget:
            break
        kept.append(line)
        used += n
    return "".join(kept) + tail, True


def append_summary(
    path: str | os.PathLike, markdown: str, *, limit: int = SUMMARY_LIMIT, full_copy: str | None = None
) -> bool:
    """Append the table to `$GITHUB_STEP_SUMMARY`, keeping the step under GitHub's size limit.

    Returns True when it had to be shortened; the note then names `full_copy` (the markdown
    file in the workspace) for the rest.
    """
    p = Path(path)
    used = p.stat().st_size if p.exists() else 0
    where = f"`{full_copy}`" if full_copy else "the results JSON"
    note = (
        f"_The table was cut here: the job summary of a step holds at most {limit // 1024} KiB. "
        f"The full table is in {where}._"
    )
    text, cut = fit_summary(markdown, max(limit - used - 2, 0), note)
    with open(p, "a", encoding="utf-8") as f:
        f.write(("\n" if used else "") + text)
    return cut


def error_summary(message: str) -> str:
    """The job summary when no results exist (the registry or an input was unusable)."""
    return f"### ⚠️ quantgate: could not run the gate\n\n```\n{message}\n```\n"
