"""Every user error carries its parts: each `UserError(...)` / `Problem(...)` built in the package
names a `field=` (where in the file or option the mistake is) or a `fix=` (what to do), so its one
line reads `subject:line: field: problem; fix` (issue 19). A sentence with neither is allowed only
where no such part exists, each listed below with its reason. Read from the source with `ast`;
nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "quantgate"
ERRORS = ("UserError", "Problem")

# "module:function" -> why its error has neither a field nor a fix. Keep it short: each entry is
# a sentence that really has no such part, or one frozen for now (the why says which).
PARAM_VALUE = "a parameter's value refused: the subject is the parameter, the problem says what it takes"
OS_REASON = "the operating system's reason is the problem; what to do depends on it"
NO_PARTS: dict[str, str] = {
    "quantgate.auto.search:Search.run": "its problem ends in the first refusal, with that refusal's own fix",
    "quantgate.onnxio:session": "ONNX Runtime's own load error is the problem; no one fix fits all its causes",
    "quantgate.produce.dynamic:quantize_dynamic.quantise": "the ORT quantiser's own failure; no one fix fits it",
    "quantgate.produce.static:_StaticRun._calibrate": "the ORT quantiser's own failure; no one fix fits it",
    "quantgate.produce.pipeline:_quantise_in_scratch": "the quantiser wrote nothing and said not why; no one fix fits",
    "quantgate.produce.pipeline:run_once": "ONNX Runtime's own error running the produced file; no one fix fits it",
    "quantgate.calibrate.build:build_set": "a model with no inputs: no set can be built for it, whatever is changed",
    "quantgate.gate.runner:describe_failure": "the model's own failure on a sample; the caller's hint ends it",
    "quantgate.gate.run:run_gate": PARAM_VALUE,
    "quantgate.gate.settings:GateSettings.__post_init__": PARAM_VALUE,
    "quantgate.produce.config:QuantConfig.__post_init__": PARAM_VALUE,
    "quantgate.paths:confine": PARAM_VALUE,
    "quantgate.paths:_backup": OS_REASON + " (no free backup name)",
    "quantgate.paths:write_text": OS_REASON,
    "quantgate.cli.comment:comment": OS_REASON,
}
# Files other helpers are converting in parallel (issue 19): each whole sentence left in them is
# allowed until they merge. The lead deletes a line once its file's raises carry their parts;
# `test_allow_lists_are_still_needed` says when one can go.
BEING_CONVERTED: dict[str, str] = {}


def _has_parts(call: ast.Call, name: str) -> bool:
    """`field=` or `fix=` given (a `Problem`'s second and fourth arguments are its field and fix)."""
    given = {k.arg for k in call.keywords}
    if given & {"field", "fix", "where"}:
        return True
    if name == "Problem" and len(call.args) >= 2:
        where = call.args[1]
        return not (isinstance(where, ast.Constant) and not where.value) or len(call.args) >= 4
    return False


def bare_errors(source: str, module: str) -> list[tuple[str, int]]:
    """("module:function", line) of each UserError/Problem built in `source` without a field or a fix."""
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call):
                f = child.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name in ERRORS and not _has_parts(child, name):
                    out.append((f"{module}:{'.'.join(scope) or '<module>'}", child.lineno))
            visit(child, scope)

    visit(ast.parse(source), [])
    return out


def _module(f: Path) -> str:
    parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_bare_errors() -> list[tuple[str, int, Path]]:
    return [(key, line, f) for f in sorted(SRC.rglob("*.py")) for key, line in bare_errors(f.read_text(), _module(f))]


def _converting(key: str) -> str | None:
    module = key.partition(":")[0]
    return next((m for m in BEING_CONVERTED if module == m or module.startswith(m + ".")), None)


def unlisted(found: list[tuple[str, int, Path]]) -> list[str]:
    """The bare errors in `found` that no allow-list holds, as FILE:LINE (KEY)."""
    return [
        f"{f.relative_to(SRC.parent)}:{line} ({key})"
        for key, line, f in found
        if key not in NO_PARTS and _converting(key) is None
    ]


def stale(found: list[tuple[str, int, Path]]) -> list[str]:
    """Allow-list entries that no bare error in `found` needs any more."""
    keys = {key for key, _, _ in found}
    return [k for k in NO_PARTS if k not in keys] + [
        m for m in BEING_CONVERTED if not any(_converting(k) == m for k in keys)
    ]


def test_every_user_error_names_a_field_or_a_fix():
    left = unlisted(package_bare_errors())
    assert not left, (
        "these errors are whole sentences: give them field= (where in the file or option) and/or "
        "fix= (what to do), or list them in NO_PARTS with the reason they have neither:\n  " + "\n  ".join(left)
    )


def test_allow_lists_are_still_needed():
    gone = stale(package_bare_errors())
    assert not gone, f"nothing bare is left here; delete them from the allow-lists: {gone}"


def test_the_allow_lists_let_through_only_what_they_name(monkeypatch):
    # a package being converted, as while helpers' branches are out (the real list may be empty)
    monkeypatch.setitem(globals(), "BEING_CONVERTED", {"quantgate.auto": "a package", "quantgate.action": "a module"})
    f = SRC / "npz.py"
    found = [
        ("quantgate.npz:read_npz", 7, f),  # listed nowhere
        ("quantgate.onnxio:session", 8, f),  # NO_PARTS
        ("quantgate.auto.search:Search.run", 9, f),  # inside a package being converted
        ("quantgate.automatic:run", 10, f),  # a sibling of it is not
    ]
    assert unlisted(found) == [
        "quantgate/npz.py:7 (quantgate.npz:read_npz)",
        "quantgate/npz.py:10 (quantgate.automatic:run)",
    ]
    assert "quantgate.onnxio:session" not in stale(found) and "quantgate.auto" not in stale(found)
    assert "quantgate.paths:write_text" in stale(found) and "quantgate.action" in stale(found)


def test_the_check_finds_a_whole_sentence():
    src = """
from quantgate.errors import Problem, UserError
def whole(p):
    raise UserError(f"{p}: not found; fix the path")
class C:
    def parts(self, p):
        raise UserError("not found", subject=p, fix="fix the path")
    def field(self, p):
        raise UserError("not found", subject=p, field="models[0].onnx")
    def registry(self, p):
        return [Problem(p, "models[0]", "bad"), Problem(p, "", "bad", "fix it"), Problem(p, "", "bad")]
    def nested(self):
        def inner():
            return errors.UserError("bad")
        return inner
"""
    assert bare_errors(src, "m") == [("m:whole", 4), ("m:C.registry", 11), ("m:C.nested.inner", 14)]
