"""The package's shape: no import circle between its modules (function-level imports included:
a lazy import hides a circle, it does not remove it), no module over 450 lines and no function
over 80. Read from the source with `ast`; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "quantgate"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
# Modules and functions allowed over the limits, each with its reason. Empty is the goal; each
# one here was over the limit before issue 19's structure pass and is left for a later split.
LATER = "over the limit before issue 19; not split yet"
MODULE_EXCEPTIONS: dict[str, str] = {}
FUNCTION_EXCEPTIONS: dict[str, str] = {}


def _modules() -> dict[str, tuple[Path, list[str]]]:
    """Dotted module name -> (file, the package its relative imports start from)."""
    out = {}
    for f in sorted(SRC.rglob("*.py")):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = parts
        else:
            package = parts[:-1]
        out[".".join(parts)] = (f, package)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its text. `from pkg import mod`
    depends on `pkg.mod` alone (its package is initialised on the way in any case), `from pkg
    import name` on `pkg`."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, (f, package) in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                subs = [f"{mod}.{a.name}" for a in node.names]
                found = [s for s in subs if s in mods]
                deps.update(found)
                if len(found) < len(subs) and mod in mods:
                    deps.add(mod)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
        deps.discard(name)
        graph[name] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    found = circles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_circle_check_finds_a_circle():
    """The check itself bites: a two-module and a three-module circle, and a chain that is none."""
    assert circles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports():
    g = import_graph()
    assert "quantgate.registry" in g["quantgate.registry_edit"]  # a module-level relative import
    assert "quantgate.diagnose" in g["quantgate.gate.entry"]  # imported inside a function


def _long_functions(tree: ast.AST, module: str):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                yield f"{module}:{node.lineno} {node.name}", lines


@pytest.mark.parametrize("limit", ["module", "function"])
def test_sizes(limit):
    over = []
    for name, (f, _) in _modules().items():
        text = f.read_text()
        if limit == "module":
            n = len(text.splitlines())
            if n > MAX_MODULE_LINES and name not in MODULE_EXCEPTIONS:
                over.append(f"{name}: {n} lines")
        else:
            for where, n in _long_functions(ast.parse(text), name):
                key = where.split(" ")[0].split(":")[0] + "." + where.split(" ")[1]
                if key not in FUNCTION_EXCEPTIONS:
                    over.append(f"{where}: {n} lines")
    assert not over, f"over the {limit} limit: " + "; ".join(over)


def test_exceptions_are_still_needed():
    """An exception listed for a module or function that no longer exceeds the limit goes."""
    mods = _modules()
    for name in MODULE_EXCEPTIONS:
        assert len(mods[name][0].read_text().splitlines()) > MAX_MODULE_LINES, name
    long = set()
    for name, (f, _) in mods.items():
        for where, _n in _long_functions(ast.parse(f.read_text()), name):
            long.add(where.split(" ")[0].split(":")[0] + "." + where.split(" ")[1])
    assert set(FUNCTION_EXCEPTIONS) <= long, set(FUNCTION_EXCEPTIONS) - long
