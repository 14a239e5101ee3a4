"""Mutation testing of the gate's decisions: plant one small bug at a time, run the tests that
reach it, and count the bugs no test notices.

Why our own mutator and not mutmut: mutmut 3.8.1 on this layout (src/, an editable install)
ignored `paths_to_mutate`, generated 28,240 mutants over all 89 files in 285 s and then found no
test for any of them. This one is small and does what the issue asks, on 2 cores:

- **Mutants** (`mutants`): one AST change each, in function bodies and module constants (never in
  f-strings, docstrings or annotations): a comparison flipped (`<` to `>=`) or moved across its
  boundary (`<` to `<=`), `==`/`!=`, `in`/`not in`, `is`/`is not`; `and`/`or`; `+`/`-`, `*`/`/`,
  `//` to `/`, `**` to `*` (also in `+=`...); `not x` and `-x` to `x`; an integer constant off by
  one, a float doubled (0 to 1), `True`/`False`; a `raise` dropped, a `return x` made `return
  None`, an `if` body made `pass`.
- **Which tests** (`trace`): the tests of each module (TARGETS) run once with a line tracer; a
  mutant runs only the tests that executed its line (fastest file first, `pytest -x`). A line
  run while a fixture was set up counts for every test of that file; a mutant of a module
  constant or a default argument runs every test that reached the module.
- **How**: the parent imports numpy, onnx, onnxruntime and pytest once and forks a child per
  mutant. The child's import system hands out the mutated module (compiled from the changed AST,
  with the original file name and line numbers); every other module is the real one. Killed: any
  failing test, an error or the timeout. Tests that run the CLI in a subprocess see the real code,
  so they are not selected.

Usage: bash scripts/mutate.sh [-j 2] [--module judge] [--rerun bench/results/mutate.json]
It writes bench/results/mutate.json (every mutant) and bench/results/mutate.md (the scores and
the survivors with their reasons from bench/mutate_survivors.json), and prints the latter.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib.abc
import importlib.util
import json
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
REASONS = REPO / "bench" / "mutate_survivors.json"

# The fast unit tests of each module (pytest -x, those that reach the mutated line). Left out:
# test_gate.py (every test runs ONNX Runtime sessions; kept for inputs.py, which only they
# reach), test_coverage.py (a minute of simulation) and test_gate_truth.py (half a minute): a
# surviving mutant runs its whole selection, and with them the run takes hours on 2 cores. The
# review's BCa mutant runs the simulation (NAMED).
_UNIT = [
    "tests/unit/test_decisions.py",
    "tests/unit/test_estimate.py",
    "tests/unit/test_reference.py",
    "tests/unit/test_metrics.py",
]
# The registry's file checks and messages are mostly reached through the CLI, which runs in the
# test's process (tests/conftest.py run_cli), so the mutated module is the one it uses.
_REGISTRY = [
    "tests/unit/test_decisions.py",
    "tests/unit/test_registry.py",
    "tests/unit/test_registry_patch.py",
    "tests/unit/test_hostile_parts.py",
    "tests/unit/test_bounded_input.py",
    "tests/cli/test_registry_cli.py",
    "tests/cli/test_bounded_input_cli.py",
    "tests/cli/test_hostile_cli.py",
    "tests/cli/test_hostile_files_cli.py",
]
TARGETS: dict[str, list[str]] = {
    "src/quantgate/gate/judge.py": _UNIT,
    "src/quantgate/gate/measure.py": _UNIT,
    "src/quantgate/gate/figures.py": _UNIT,
    "src/quantgate/gate/estimate.py": _UNIT,
    "src/quantgate/gate/sums.py": [*_UNIT, "tests/unit/test_sums.py"],
    "src/quantgate/gate/steps.py": [*_UNIT, "tests/unit/test_sums.py"],
    "src/quantgate/registry.py": _REGISTRY,
    "src/quantgate/registry_read.py": _REGISTRY,
    "src/quantgate/inputs.py": ["tests/unit/test_decisions.py", "tests/unit/test_inputs.py", "tests/unit/test_gate.py"],
}
_DECISIONS = ["tests/unit/test_decisions.py"]
# The bugs a review planted by hand (issue 19), written out: each must die. (module, old, new, what,
# test files; None: the tests that reach the line, as for any mutant)
NAMED: list[tuple[str, str, str, str, list[str] | None]] = [
    ("src/quantgate/gate/judge.py", "if measured.decided:", "if True:", "a row that is never marginal", None),
    (
        "src/quantgate/gate/judge.py",
        "lo, hi = (ci.low, ci.high) if self.higher_is_worse else (-ci.high, -ci.low)",
        "lo, hi = (ci.low, ci.high)",
        "an SQNR interval compared in the wrong direction",
        None,
    ),
    (
        "src/quantgate/gate/judge.py",
        '_RANK = {"error": 0, "fail": 1, "ok": 2}',
        '_RANK = {"error": 1, "fail": 0, "ok": 2}',
        "an error output ranked below a failing one",
        _DECISIONS,  # a module constant: run at import, so no traced line selects the tests
    ),
    (
        "src/quantgate/results.py",
        '        if c.errored:\n            return "error"\n        if c.failed:\n            return "fail"',
        '        if c.failed:\n            return "fail"\n        if c.errored:\n            return "error"',
        "an error row ranked below a failing one (exit 1 instead of 2)",
        _DECISIONS,
    ),
    (
        "src/quantgate/registry_read.py",
        "            per_entry.setdefault(parts[1], []).append(p)",
        "            pass",
        "a schema-invalid budget measured anyway",
        None,
    ),
    (
        "src/quantgate/registry.py",
        "    verify_digest(target, digest, field_name=fname, registry=reg.path)",
        "    if e.mode != 'fp32':\n        verify_digest(target, digest, field_name=fname, registry=reg.path)",
        "resolve() skipping the fp32 digest",
        None,
    ),
    (
        "src/quantgate/gate/measure.py",
        "boot_seed = settings.bootstrap_seed",
        "boot_seed = [0, 0xB007]",
        "the bootstrap ignoring --seed",
        None,
    ),
    (
        "src/quantgate/gate/pair.py",
        "stream(self.plans, self.settings.seed)",
        "stream(self.plans, 0)",
        "the draws ignoring --seed",
        [*_DECISIONS, "tests/unit/test_gate.py"],
    ),
    (
        "src/quantgate/gate/figures.py",
        "        drop = 1.0 - plcc",
        "        drop = 1.0 - abs(plcc)",
        "drop computed as 1 - |PLCC| (the reference method's)",
        None,
    ),
    (
        "src/quantgate/gate/estimate.py",
        '"drop": 1.0 - plcc,',
        '"drop": 1.0 - np.abs(plcc),',
        "drop computed as 1 - abs(PLCC) (the gate's estimator)",
        None,
    ),
    (
        "src/quantgate/gate/estimate.py",
        "if estimate is not None and np.isfinite(estimate):",
        "if False:",
        "BCa replaced by plain percentiles",
        ["tests/unit/test_coverage.py"],
    ),
]
PRELOAD = ("numpy", "onnx", "onnxruntime", "pytest", "jsonschema", "click", "yaml", "hypothesis", "onnx.numpy_helper")


# -- mutants -------------------------------------------------------------------------------------
_CMP_FLIP = {ast.Lt: ast.GtE, ast.LtE: ast.Gt, ast.Gt: ast.LtE, ast.GtE: ast.Lt}
_CMP_EDGE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_CMP_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot}
_CMP_SWAP[ast.IsNot] = ast.Is
_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div}
_BIN[ast.Pow] = ast.Mult
_SYM = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Pow: "**",
    ast.And: "and",
    ast.Or: "or",
}


@dataclass
class Mutant:
    module: str  # path relative to the repository
    index: int  # the node's place in ast.walk order
    kind: str  # what the change is (see `_apply`)
    arg: str  # the change's detail (the new operator's name, ...)
    line: int
    lines: tuple[int, int]  # the lines whose execution selects tests
    at_import: bool  # a module constant or default argument: runs when the module is imported
    what: str  # the change in words
    status: str = ""  # "killed", "survived", "timeout", "no test"
    killer: str = ""
    seconds: float = 0.0
    tests: int = 0

    @property
    def key(self) -> str:
        if self.kind == "named":
            return f"{Path(self.module).name}:{self.line}: {self.what}"
        return f"{Path(self.module).name}:{self.line}: {self.what}"


def _skipped(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: f-strings, annotations, docstrings, `if TYPE_CHECKING`."""
    out: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            out.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            drop(node)
        elif isinstance(node, ast.arg | ast.AnnAssign):
            drop(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            drop(node.returns)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                drop(body[0])
    return out


def _in_functions(tree: ast.AST) -> set[int]:
    """ids of nodes inside a function's body (run when it is called, not at import)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            body = node.body if isinstance(node.body, list) else [node.body]
            for stmt in body:
                out.update(id(n) for n in ast.walk(stmt))
    return out


def _statement_span(tree: ast.AST) -> dict[int, tuple[int, int]]:
    """node id -> the lines of its innermost simple statement (or its own, in a compound one's header)."""
    span: dict[int, tuple[int, int]] = {}
    simple = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Raise, ast.Expr, ast.Assert)

    def visit(node: ast.AST, current: tuple[int, int] | None) -> None:
        if isinstance(node, simple):
            current = (node.lineno, node.end_lineno or node.lineno)
        elif isinstance(node, ast.stmt):
            current = None
        if hasattr(node, "lineno"):
            own = (node.lineno, node.end_lineno or node.lineno)  # type: ignore[attr-defined]
            span[id(node)] = current or own
        for child in ast.iter_child_nodes(node):
            visit(child, current)

    visit(tree, None)
    return span


def mutants(module: str) -> list[Mutant]:
    tree = ast.parse((REPO / module).read_text(), module)
    skip, inside, span = _skipped(tree), _in_functions(tree), _statement_span(tree)
    out: list[Mutant] = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        lines = span.get(id(node), (node.lineno, node.lineno))  # type: ignore[attr-defined]

        def add(kind: str, arg: str, what: str, lines: tuple[int, int] = lines, node: ast.AST = node) -> None:
            out.append(
                Mutant(module, i, kind, arg, node.lineno, lines, id(node) not in inside, what)  # type: ignore[attr-defined]
            )

        if isinstance(node, ast.Compare):
            for j, op in enumerate(node.ops):
                for table in (_CMP_FLIP, _CMP_EDGE, _CMP_SWAP):
                    new = table.get(type(op))
                    if new is not None:
                        add("cmp", f"{j}:{new.__name__}", f"{_SYM[type(op)]} → {_SYM[new]}")
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            add("boolop", new.__name__, f"{_SYM[type(node.op)]} → {_SYM[new]}")
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BIN:
            new = _BIN[type(node.op)]
            add("binop", new.__name__, f"{_SYM[type(node.op)]} → {_SYM[new]}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            add("unary", "", f"{'not ' if isinstance(node.op, ast.Not) else '-'}x → x")
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            v = node.value
            if isinstance(v, bool):
                new_v: object = not v
            elif isinstance(v, int):
                new_v = v + 1
            else:
                new_v = v * 2 if v else 1.0
            add("const", repr(new_v), f"{v!r} → {new_v!r}")
        elif isinstance(node, ast.Raise):
            add("raise", "", "raise dropped")
        elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
            add("return", "", "return x → return None")
        elif isinstance(node, ast.If) and not _only_pass(node.body):
            add("ifbody", "", "if body → pass", (node.test.lineno, node.test.end_lineno or node.test.lineno))
    return out


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _only_pass(body: list[ast.stmt]) -> bool:
    return all(isinstance(s, ast.Pass) for s in body)


def named() -> list[Mutant]:
    """The review's mutants (NAMED) as `Mutant`s: `index` is their place in NAMED."""
    out = []
    for i, (module, old, _new, what, _files) in enumerate(NAMED):
        text = (REPO / module).read_text()
        if text.count(old) != 1:
            sys.exit(f"mutate: {module} holds {text.count(old)} copies of {old!r}; update NAMED")
        line = text[: text.index(old)].count("\n") + 1
        out.append(Mutant(module, i, "named", "", line, (line, line + old.count("\n")), False, what))
    return out


def _apply(m: Mutant) -> ast.Module:
    """The module's AST with mutant `m` applied."""
    if m.kind == "named":
        _module, old, new, _what, _files = NAMED[m.index]
        return ast.parse((REPO / m.module).read_text().replace(old, new), m.module)
    tree = ast.parse((REPO / m.module).read_text(), m.module)
    nodes = list(ast.walk(tree))
    node = nodes[m.index]
    parents = {id(c): p for p in nodes for c in ast.iter_child_nodes(p)}
    if m.kind == "cmp":
        j, name = m.arg.split(":")
        assert isinstance(node, ast.Compare)
        node.ops[int(j)] = getattr(ast, name)()
    elif m.kind in ("boolop", "binop"):
        node.op = getattr(ast, m.arg)()  # type: ignore[attr-defined]
    elif m.kind == "unary":
        assert isinstance(node, ast.UnaryOp)
        _replace(parents[id(node)], node, node.operand)
    elif m.kind == "const":
        assert isinstance(node, ast.Constant)
        node.value = ast.literal_eval(m.arg)
    elif m.kind == "raise":
        _replace(parents[id(node)], node, ast.copy_location(ast.Pass(), node))
    elif m.kind == "return":
        assert isinstance(node, ast.Return)
        node.value = None
    elif m.kind == "ifbody":
        assert isinstance(node, ast.If)
        node.body = [ast.copy_location(ast.Pass(), node.body[0])]
    ast.fix_missing_locations(tree)
    return tree


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for k, item in enumerate(value):
                if item is old:
                    value[k] = new
                    return
    raise LookupError(f"{old!r} not under {parent!r}")


# -- running ---------------------------------------------------------------------------------------
class _Swap(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Hands out one module compiled from a mutated AST; every other import is untouched."""

    def __init__(self, name: str, path: Path, code) -> None:
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        exec(self.code, module.__dict__)


def _module_name(module: str) -> str:
    return module.removeprefix("src/").removesuffix(".py").replace("/", ".")


class _FirstFailure:
    def __init__(self) -> None:
        self.nodeid = ""
        self.failed: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failed.append(f"{report.nodeid} ({report.when})")
            self.nodeid = self.nodeid or self.failed[0]


def _child(args: list[str], plugins: list, out: Path, timeout: float | None) -> None:
    """In a forked child: run pytest quietly, write {"exit", "killer"} to `out`, and exit."""
    code = 3
    try:
        if timeout:
            signal.alarm(max(1, int(timeout)))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        first = _FirstFailure()
        code = int(pytest.main(args, plugins=[first, *plugins]))
        out.write_text(json.dumps({"exit": code, "killer": first.nodeid, "failed": first.failed}))
    finally:
        os._exit(code)


def _fork(args: list[str], plugins: list, out: Path, timeout: float | None, swap: _Swap | None) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(REPO)
            if swap is not None:
                sys.meta_path.insert(0, swap)
                try:  # a mutant that breaks the import is killed by it (pytest would call it a usage error)
                    importlib.import_module(swap.name)
                except Exception as err:
                    out.write_text(json.dumps({"exit": 1, "killer": f"import fails: {type(err).__name__}"}))
                    os._exit(1)
            _child(args, plugins, out, timeout)
        finally:
            os._exit(3)
    return pid


_PYTEST = ["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", "--rootdir", str(REPO)]


class _Tracer:
    """A pytest plugin that records which lines of the target files each test phase runs."""

    def __init__(self, paths: set[str]) -> None:
        self.paths = paths
        self.lines: dict[str, dict[str, dict[str, list[int]]]] = {}  # nodeid -> phase -> path -> lines
        self.seconds: dict[str, float] = {}
        self.current: dict[str, set[int]] | None = None

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename in self.paths:
            return self._local
        return None

    def _local(self, frame, event, arg):
        if event == "line" and self.current is not None:
            self.current.setdefault(frame.f_code.co_filename, set()).add(frame.f_lineno)  # type: ignore[arg-type]
        return self._local

    def _phase(self, item, phase: str):
        import threading

        self.current = {}
        t0 = time.perf_counter()
        sys.settrace(self._global)
        threading.settrace(self._global)
        try:
            return (yield)
        finally:
            sys.settrace(None)
            threading.settrace(None)  # type: ignore[arg-type]
            self.seconds[item.nodeid] = self.seconds.get(item.nodeid, 0.0) + time.perf_counter() - t0
            got = {p: sorted(v) for p, v in self.current.items()}
            self.lines.setdefault(item.nodeid, {})[phase] = got
            self.current = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        return (yield from self._phase(item, "setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        return (yield from self._phase(item, "call"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item):
        return (yield from self._phase(item, "teardown"))

    def pytest_sessionfinish(self, session) -> None:
        Path(os.environ["MUTATE_TRACE_OUT"]).write_text(json.dumps({"lines": self.lines, "seconds": self.seconds}))


def trace(files: list[str], work: Path) -> dict:
    """Run `files` once with the line tracer: which tests run which lines, and how long each takes."""
    out = work / "trace.json"
    os.environ["MUTATE_TRACE_OUT"] = str(out)
    paths = {str(REPO / m) for m in TARGETS}
    tracer = _Tracer(paths)
    status = work / "trace-status.json"
    pid = _fork([a for a in _PYTEST if a != "-x"] + files, [tracer], status, None, None)
    _, st = os.waitpid(pid, 0)
    result = json.loads(status.read_text()) if status.exists() else {"exit": st, "failed": []}
    if result["exit"] not in (0, 1) or not out.exists():
        sys.exit(f"mutate: the tests could not run without a mutant (pytest exit {result['exit']})")
    traced = json.loads(out.read_text())
    # a test that fails without any mutant kills nothing: it is left out, and the report says so
    traced["broken"] = sorted({f.split(" (")[0] for f in result["failed"]})
    for nodeid in traced["broken"]:
        traced["lines"].pop(nodeid, None)
    return traced


def select(m: Mutant, traced: dict) -> list[str]:
    """The tests (of the module's own test files) that run the mutant's lines, fastest file first."""
    path = str(REPO / m.module)
    if m.kind == "named" and NAMED[m.index][4] is not None:
        return list(NAMED[m.index][4] or ())  # whole files, not traced
    files = set(TARGETS[m.module])
    lo, hi = m.lines
    wanted = set(range(lo, hi + 1))
    chosen: set[str] = set()
    setup_files: set[str] = set()
    for nodeid, phases in traced["lines"].items():
        if nodeid.split("::")[0] not in files:
            continue
        reached = {ph: set(v.get(path, ())) for ph, v in phases.items()}
        if m.at_import:
            if any(reached.values()):
                chosen.add(nodeid)
            continue
        if wanted & (reached.get("call", set()) | reached.get("teardown", set())):
            chosen.add(nodeid)
        if wanted & reached.get("setup", set()):
            setup_files.add(nodeid.split("::")[0])
    chosen |= {n for n in traced["lines"] if n.split("::")[0] in setup_files}
    by_file: dict[str, list[str]] = {}
    for n in traced["lines"]:  # the order pytest ran them in
        if n in chosen:
            by_file.setdefault(n.split("::")[0], []).append(n)
    sec = traced["seconds"]
    cost = {f: sum(sec.get(n, 0.0) for n in ns) for f, ns in by_file.items()}
    # cheapest file first, cheapest test first within it (a file's module fixtures are set up once)
    return [n for f in sorted(by_file, key=cost.__getitem__) for n in sorted(by_file[f], key=lambda n: sec.get(n, 0.0))]


def run(
    todo: list[Mutant], traced: dict, work: Path, jobs: int, only_files: set[str] | None = None, log: Path | None = None
) -> None:
    """Run `todo`; each result is also appended to `log` as it comes (a stopped run can be resumed
    with --rerun LOG)."""
    running: dict[int, tuple[Mutant, Path, float]] = {}
    queue = list(todo)
    done = 0
    while queue or running:
        while queue and len(running) < jobs:
            m = queue.pop(0)
            tests = select(m, traced)
            if only_files is not None and m.status in ("survived", "no test"):
                tests = [t for t in tests if t.split("::")[0] in only_files]
            m.tests = len(tests)
            if not tests:  # (a re-run keeps what the last run found)
                m.status = m.status or "no test"
                done += 1
                _record(m, done, len(todo), log)
                continue
            budget = (10.0 if m.status == "timeout" else 3.0) * sum(
                traced["seconds"].get(n, 60.0) for n in tests
            ) + 20.0
            code = compile(_apply(m), str(REPO / m.module), "exec", dont_inherit=True)
            swap = _Swap(_module_name(m.module), REPO / m.module, code)
            out = work / f"m{len(running)}-{m.index}-{time.monotonic_ns()}.json"
            deselect = [x for b in traced.get("broken", []) for x in ("--deselect", b)]
            pid = _fork([*_PYTEST, *deselect, *tests], [], out, budget, swap)
            running[pid] = (m, out, time.perf_counter())
        if not running:
            continue
        pid, st = os.wait()
        m, out, t0 = running.pop(pid)
        m.seconds = round(time.perf_counter() - t0, 2)
        if out.exists():
            r = json.loads(out.read_text())
            # 4 (usage) and 5 (no tests ran) are the selection's fault, not the mutant's
            m.status = {0: "survived", 4: "error", 5: "error"}.get(r["exit"], "killed")
            m.killer = "" if m.status == "survived" else r["killer"] or f"pytest exit {r['exit']}"
            out.unlink()
        else:
            m.status = "timeout" if os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGALRM else "killed"
            m.killer = m.status
        done += 1
        _record(m, done, len(todo), log)


def _record(m: Mutant, done: int, total: int, log: Path | None) -> None:
    if log is not None:
        with log.open("a") as f:
            f.write(json.dumps(asdict(m)) + "\n")
    print(f"  [{done}/{total}] {m.status:8} {m.key}", file=sys.stderr, flush=True)


# -- report ------------------------------------------------------------------------------------------
def report(
    ms: list[Mutant],
    started: str,
    seconds: float | None,
    rerun: str | None,
    tests: list[str] | None = None,
    broken: list[str] | None = None,
) -> str:
    reasons = json.loads(REASONS.read_text()) if REASONS.exists() else {}
    lines = [
        (f"{started}, from runs" if seconds is None else f"Run {started}")
        + f" on {platform.machine()} ({_cpu()})"
        + ("" if seconds is None else f", {seconds / 60:.0f} min")
        + (f"; the survivors of {rerun} re-run" if rerun else "")
        + (f" against {', '.join(tests)}" if tests else "")
        + ".",
        "",
        "| module | mutants | killed | survived | score |",
        "|---|---:|---:|---:|---:|",
    ]
    total_k = total = 0
    for module in TARGETS:
        mine = [m for m in ms if m.module == module and m.kind != "named" and m.status != "not run"]
        if not mine:
            continue
        k = sum(m.status in ("killed", "timeout") for m in mine)
        total_k += k
        total += len(mine)
        lines.append(f"| {module.removeprefix('src/')} | {len(mine)} | {k} | {len(mine) - k} | {k / len(mine):.1%} |")
    lines.append(f"| **all** | {total} | {total_k} | {total - total_k} | {total_k / max(total, 1):.1%} |")
    unrun = sum(m.status == "not run" for m in ms)
    if unrun:
        lines += ["", f"Not run (the run was stopped): {unrun} mutants."]
    if broken:
        lines += ["", "Left out, failing without any mutant: " + ", ".join(f"`{b}`" for b in broken) + "."]
    review = [m for m in ms if m.kind == "named"]
    if review:
        lines += ["", "| the review's mutant (issue 19) | where | result | first failing test |", "|---|---|---|---|"]
        for m in review:
            what = m.what.replace("|", "\\|")
            lines.append(f"| {what} | {Path(m.module).name}:{m.line} | {m.status} | {m.killer or '-'} |")
    lines += ["", "| surviving mutant | code | reason |", "|---|---|---|"]
    for m in ms:
        if m.status in ("survived", "no test") and m.kind != "named":
            why = reasons.get(m.key, "(not yet classified)")
            src = (REPO / m.module).read_text().splitlines()[m.line - 1].strip().replace("|", "\\|")
            src = src if len(src) <= 70 else src[:67] + "..."
            lines.append(f"| {m.key}{' (no test reaches it)' if m.status == 'no test' else ''} | `{src}` | {why} |")
    return "\n".join(lines) + "\n"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--module", action="append", help="only these modules (e.g. judge, registry)")
    ap.add_argument(
        "--rerun",
        help="a previous mutate.json (or the mutate.log.jsonl of a stopped run): run only what it did not kill",
    )
    ap.add_argument("--only", action="append", help="only the mutants whose key contains this text")
    ap.add_argument(
        "--tests",
        action="append",
        help="with --rerun: run the survivors against only these test files (those changed since that run)",
    )
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--log", help="append each result here (default bench/results/mutate.log.jsonl on a full run)")
    ap.add_argument("--report-only", action="store_true", help="with --rerun LOG: print its table, run nothing")
    a = ap.parse_args()
    modules = [m for m in TARGETS if not a.module or Path(m).stem in a.module]
    ms = [m for module in modules for m in mutants(module)]
    if not a.module:
        ms += named()
    if a.only:
        ms = [m for m in ms if any(o in m.key for o in a.only)]
    if a.list:
        for m in ms:
            print(m.key)
        print(f"{len(ms)} mutants", file=sys.stderr)
        return
    todo = ms
    if a.rerun:
        text = Path(a.rerun).read_text()
        previous = json.loads(text) if a.rerun.endswith(".json") else [json.loads(x) for x in text.splitlines()]
        before = {f"{d['module']}:{d['index']}:{d['kind']}:{d['arg']}": d for d in previous}
        todo = []
        for m in ms:
            old = before.get(m.module + f":{m.index}:{m.kind}:{m.arg}")
            resume = not a.rerun.endswith(".json")  # a stopped run's log: what it found stands
            kill = (  # a timeout under load is not trusted: it runs again, with more time
                old and old["status"] == "killed" and old["killer"] not in ("pytest exit 4", "pytest exit 5")
            )
            if old and (kill or (resume and old["status"] in ("survived", "no test"))):
                m.status, m.killer, m.seconds, m.tests = old["status"], old["killer"], old["seconds"], old["tests"]
            else:
                m.status = old["status"] if old else ""
                todo.append(m)
    todo.sort(key=lambda m: m.status not in ("survived", "no test"))  # the quick re-runs first
    if a.report_only:
        for m in todo:
            m.status = m.status or "not run"
        text = report(ms, f"Results in {a.rerun}", None, None)
        if Path(a.rerun).resolve() == (RESULTS / "mutate.json").resolve():
            (RESULTS / "mutate.md").write_text(text)
        print(text)
        return
    for name in PRELOAD:
        __import__(name)
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        work = Path(tmp)
        wanted = {f for m in todo if not (m.kind == "named" and NAMED[m.index][4]) for f in TARGETS[m.module]}
        files = sorted(f for f in wanted if (REPO / f).exists())
        print(f"mutate: {len(todo)} of {len(ms)} mutants to run; tracing {len(files)} test files", file=sys.stderr)
        traced = trace(files, work) if files else {"lines": {}, "seconds": {}}
        print(f"mutate: traced in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        RESULTS.mkdir(parents=True, exist_ok=True)
        log = Path(a.log) if a.log else RESULTS / "mutate.log.jsonl" if not a.module and not a.only else None
        if log is not None and not a.rerun:
            log.write_text("")
        run(todo, traced, work, a.jobs, set(a.tests) if a.tests else None, log)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not a.module and not a.only:
        (RESULTS / "mutate.json").write_text(json.dumps([asdict(m) for m in ms], indent=1) + "\n")
    text = report(ms, started, time.perf_counter() - t0, a.rerun, a.tests, traced.get("broken"))
    if not a.module and not a.only:
        (RESULTS / "mutate.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
