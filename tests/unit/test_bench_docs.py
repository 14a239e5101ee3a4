"""The tables in docs/benchmarks.md are what their scripts print.

Each ```sh block there names a script under bench/; the ```text block after it (before the next
command or section) is that script's output. Two checks:

- format: every line of the block is a line the script's current code can print. The script's
  `print` calls are read from its source (ast): literal text and fields of constant text (column
  headers such as `{'model':<18}`) must match exactly, run-time fields match anything. A column
  renamed, added or dropped in the script, a row or column written by hand, or a warning pasted
  in with the output fails here.
- figures: for the scripts whose figures are not timings, the block holds what the script prints
  now (the registry bench's sizes and problem counts, re-run on the small sizes).

Timing figures cannot be compared (the machine is shared); they carry the CPU and load they came
from instead, and that the block names the CPU is checked too.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

DOC = REPO / "docs" / "benchmarks.md"
WILD = None  # a run-time field: any text
# a run-time field formatted as a number (`{x:8.2f}`, `{n:5d}`): digits, never words
NUMBER = r"\s*[-+]?(?:[\d.,_]+(?:[eE][-+]?\d+)?%?|nan|inf)"
_NUMERIC_TYPES = set("dfFeEgGn%")


@dataclass
class Table:
    command: list[str]  # the command's words
    script: Path
    lines: list[str]
    at: int  # the line of the ```text fence in the doc


def tables(doc: Path = DOC) -> list[Table]:
    """Each ```text block that follows a ```sh block naming a bench script (same section)."""
    out: list[Table] = []
    command: list[str] | None = None
    fence, block, start = None, [], 0
    for i, line in enumerate(doc.read_text().splitlines(), 1):
        if fence is None:
            if line.startswith("```"):
                fence, block, start = line[3:].strip(), [], i
            elif line.startswith("## "):
                command = None
            continue
        if line.startswith("```"):
            if fence == "sh":
                words = next((shlex.split(c) for c in block if "bench/" in c), None)
                command = words
            elif fence == "text" and command is not None:
                script = REPO / next(w for w in command if w.startswith("bench/"))
                out.append(Table(command, script, block, start))
                command = None
            fence = None
            continue
        block.append(line)
    return out


# -- what a script can print ------------------------------------------------------------------


def _assignments(tree: ast.AST) -> dict[str, list[ast.expr]]:
    found: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found.setdefault(node.targets[0].id, []).append(node.value)
    return found


class _Number(str):
    """A field formatted as a number (a marker among the literal pieces)."""


NUMBER_FIELD = _Number("")


def _numeric(part: ast.FormattedValue) -> bool:
    spec = part.format_spec
    if spec is None or not spec.values or not isinstance(spec.values[-1], ast.Constant):
        return False
    text = str(spec.values[-1].value)
    return bool(text) and text[-1] in _NUMERIC_TYPES


def _segments(node: ast.expr, names: dict[str, list[ast.expr]], depth: int = 0) -> list[list[str | None]]:
    """The texts `node` can evaluate to, each a list of literal pieces and WILD fields."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [[node.value]]
    if isinstance(node, ast.JoinedStr):
        out: list[str | None] = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            elif (
                isinstance(part, ast.FormattedValue)
                and isinstance(part.value, ast.Constant)
                and part.conversion == -1
                and (part.format_spec is None or all(isinstance(v, ast.Constant) for v in part.format_spec.values))
            ):
                spec = "".join(str(v.value) for v in part.format_spec.values) if part.format_spec else ""
                out.append(format(part.value.value, spec))
            elif isinstance(part, ast.FormattedValue) and _numeric(part):
                out.append(NUMBER_FIELD)
            else:
                out.append(WILD)
        return [out]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _segments(node.left, names, depth) for b in _segments(node.right, names, depth)]
    if isinstance(node, ast.IfExp):
        return _segments(node.body, names, depth) + _segments(node.orelse, names, depth)
    if isinstance(node, ast.Name) and depth < 3 and len(names.get(node.id, [])) == 1:
        return _segments(names[node.id][0], names, depth + 1)
    return [[WILD]]


def _line_patterns(script: Path) -> list[re.Pattern]:
    tree = ast.parse(script.read_text())
    names = _assignments(tree)
    texts: list[list[str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" and node.args:
            alternatives: list[list[str | None]] = [[]]
            for k, arg in enumerate(node.args):
                each = [[WILD]] if isinstance(arg, ast.Starred) else _segments(arg, names)
                alternatives = [a + ([" "] if k else []) + b for a in alternatives for b in each]
            texts += alternatives
    patterns = []
    for text in texts:
        # one printed text may hold several lines: split its literal pieces at the line breaks
        line: list[str] = []
        for piece in text:
            if piece is WILD:
                line.append(".*")
                continue
            if piece is NUMBER_FIELD:
                line.append(NUMBER)
                continue
            first, *rest = piece.split("\n")
            line.append(re.escape(first))
            for nxt in rest:
                patterns.append("".join(line))
                line = [re.escape(nxt)]
        patterns.append("".join(line))
    return [re.compile(p + r"\s*") for p in set(patterns)]


TABLES = tables()


def test_every_bench_script_named_in_the_doc_has_its_table():
    scripts = {t.script.name for t in TABLES}
    assert len(TABLES) >= 8 and {"hostile_corpus.py", "registry_bench.py", "qat_vs_ptq.py"} <= scripts
    assert all(t.script.is_file() for t in TABLES), [t.script for t in TABLES if not t.script.is_file()]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"{t.script.name}@{t.at}")
def test_every_line_of_a_table_is_one_its_script_prints(table):
    patterns = _line_patterns(table.script)
    foreign = [ln for ln in table.lines if ln.strip() and not any(p.fullmatch(ln) for p in patterns)]
    assert not foreign, f"docs/benchmarks.md:{table.at}: lines {table.script.name} does not print: {foreign}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"{t.script.name}@{t.at}")
def test_every_table_names_its_cpu(table):
    assert any(re.match(r"#? ?CPU: \S", ln) for ln in table.lines), f"docs/benchmarks.md:{table.at}: no CPU line"


def test_the_format_check_bites():
    """A column the script does not print, a renamed header and a pasted warning all fail."""
    table = next(t for t in TABLES if t.script.name == "qat_vs_ptq.py")
    patterns = _line_patterns(table.script)
    header = next(ln for ln in table.lines if ln.startswith("model "))
    assert any(p.fullmatch(header) for p in patterns)
    for bad in (header + "  before", header.replace("ptq*", "ptq+"), "bench/x.py:1: DeprecationWarning: old"):
        assert not any(p.fullmatch(bad) for p in patterns), bad


# -- figures that are not timings: what the script prints now -----------------------------------


def _rows(lines: list[str]) -> dict[str, list[str]]:
    return {ln.split()[0]: ln.split() for ln in lines if ln.strip() and ln.split()[0].isdigit()}


def test_registry_sizes_and_problem_counts_are_what_the_script_prints_now():
    """registry_bench: entries, MB and problems are deterministic (load s is a timing)."""
    table = next(t for t in TABLES if t.script.name == "registry_bench.py")
    shown = _rows(table.lines)
    small = [n for n in ("1000", "4000") if n in shown]
    assert small, shown
    proc = subprocess.run(
        [sys.executable, str(table.script), "--entries", ",".join(small), "--repeat", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    now = _rows(proc.stdout.splitlines())
    for n in small:
        assert now[n][:3] == shown[n][:3], (n, now[n], shown[n])


def test_the_hostile_corpus_counts_are_what_the_script_prints_now():
    """hostile_corpus: every count is deterministic (no timing): the whole table, re-run."""
    table = next(t for t in TABLES if t.script.name == "hostile_corpus.py")
    proc = subprocess.run([sys.executable, str(table.script)], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]

    def counts(lines):
        return [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith("# CPU:")]

    assert counts(proc.stdout.splitlines()) == counts(table.lines)
