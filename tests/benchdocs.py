"""Reading the bench tables in docs (the ```text block after a ```sh block naming a bench
script) and the lines a bench script can print (its `print` calls, read with ast). Used by
tests/unit/test_bench_docs.py (docs/benchmarks.md) and test_measurement_docs.py."""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

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
                words = next((shlex.split(c, comments=True) for c in block if "bench/" in c), None)
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


def line_patterns(script: Path) -> list[re.Pattern]:
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
