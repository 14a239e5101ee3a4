"""Load and validate a model registry; resolve each entry's files below the repository root.

The schema ships as package data (`schemas/registry.schema.json`). Unknown fields are kept
and ignored. Problems with one entry stay with that entry so the others can still be gated;
a file that is not a registry at all is a `UserError`: one that is not a regular file, is over
`limits.MAX_REGISTRY_BYTES` or lists more than `limits.MAX_REGISTRY_ENTRIES` models, is not
UTF-8, or is not JSON as JSON defines it (`strictjson`: no NaN or infinity, no lone surrogate,
no nesting deeper than `limits.MAX_JSON_DEPTH`). Loading takes time linear in the file's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from . import limits
from .errors import Problem, UserError, param
from .paths import confine, find_repo_root, sha256_file, sidecar_path
from .registry_read import (
    DEFAULT_BUDGET,
    DEFAULT_REGISTRY,
    entry_lines,
    read_registry,
    schema_problems,
    shown_name,
    typo,
    why_unresolved,
)

DEFAULT_MODE = "fp32"
MODES = ("fp32", "dynamic", "static", "qat")


@dataclass
class Entry:
    index: int
    raw: dict
    id: str
    mode: str
    budget: float
    onnx_path: Path | None = None
    int8_path: Path | None = None
    calibration_path: Path | None = None
    eval_path: Path | None = None
    sha256: str | None = None
    int8_sha256: str | None = None
    budget_sqnr_db: float | None = None
    budget_rmse: float | None = None
    gate_samples: int | None = None
    input_spec: dict = field(default_factory=dict)
    gate_outputs: list[str] | None = None
    nodes_to_exclude: tuple[str, ...] = ()  # kept in float by every producer
    min_int8_share: float | None = None  # quant_min_int8_weight_share: a coverage budget
    qat_config_path: Path | None = None
    line: int | None = None
    field_lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # fields that look like misspelt quantgate fields

    def line_of(self, key: str) -> int | None:
        """The line of the entry's field `key`, else the entry's own line."""
        return self.field_lines.get(key, self.line)


@dataclass
class Registry:
    path: Path
    root: Path
    data: dict
    entries: list[Entry]
    problems: list[Problem]  # every problem, registry-wide and per entry

    def get(self, model_id: str) -> Entry:
        for e in self.entries:
            if e.id == model_id:
                return e
        known = ", ".join(e.id for e in self.entries) or "none"
        raise UserError(f"no model with id '{model_id}'", subject=str(self.path), fix=f"known ids: {known}")

    def find_by_file(self, onnx: Path) -> Entry | None:
        try:
            target = onnx.resolve()
        except (RuntimeError, OSError, ValueError) as err:  # a symlink loop, a NUL byte
            raise UserError(
                f"cannot be resolved ({why_unresolved(err)})", subject=str(onnx), fix="pass the model file itself"
            ) from None
        for e in self.entries:
            if e.onnx_path is not None and e.onnx_path == target:
                return e
        return None


def load_registry(path: str | Path = DEFAULT_REGISTRY, root: str | Path | None = None) -> Registry:
    """Read, validate and resolve a registry. Raises `UserError` only when it is unusable whole."""
    path = Path(path)
    text, data, bad_values = read_registry(path)
    if root is not None and not Path(root).is_dir():
        raise UserError("is not a folder", subject=f"{param('root')} {root}", fix="name the repository's folder")
    # a registry on standard input lives in the current folder: its paths are relative to it
    root_p = Path(root).resolve() if root is not None else find_repo_root(path)
    shown = shown_name(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        top = 'top level must be an object with a "models" array'
        raise Problem(shown, "", top, 'wrap the entries as {"models": [...]}')
    most = limits.REGISTRY_ENTRIES.value()
    if len(data["models"]) > most:
        raise UserError(
            f"lists {len(data['models']):,} models, over the limit of {most:,}",
            subject=shown,
            field="models",
            fix=f"split the registry, or {limits.REGISTRY_ENTRIES.fix()}",
        )
    lines, field_lines = entry_lines(text, data["models"])
    problems, per_entry = schema_problems(data, lines, field_lines, shown, bad_values)
    base = path.resolve().parent
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(data["models"]):
        if not isinstance(raw, dict):
            continue  # the schema already reported it
        e = _entry(i, raw, lines[i], field_lines[i], per_entry.get(i, []))
        problems += _checked(e, seen, shown, base, root_p)
        entries.append(e)
    problems += _shared_sidecars(entries, shown)
    return Registry(path=path, root=root_p, data=data, entries=entries, problems=problems)


def _entry(i: int, raw: dict, line: int | None, field_lines: dict[str, int], problems: list[Problem]) -> Entry:
    """The entry of `raw` (models[i]) with every field the schema accepts read into its type;
    what the schema refused stays at its default (the problem says why)."""
    raw_id = raw.get("id")
    mode = raw.get("quant_mode", DEFAULT_MODE)
    budget = raw.get("quant_accuracy_budget_plcc", DEFAULT_BUDGET)
    e = Entry(
        index=i,
        raw=raw,
        id=raw_id if isinstance(raw_id, str) else f"models[{i}]",
        mode=mode if mode in MODES else str(mode),
        budget=float(budget) if _number(budget) else DEFAULT_BUDGET,
        line=line,
        field_lines=field_lines,
        problems=list(problems),
    )
    for key in ("sha256", "int8_sha256"):
        v = raw.get(key)
        if isinstance(v, str):
            setattr(e, key, v)
    for key, attr in (
        ("quant_accuracy_budget_sqnr_db", "budget_sqnr_db"),
        ("quant_accuracy_budget_rmse", "budget_rmse"),
    ):
        v = raw.get(key)
        if _number(v):
            setattr(e, attr, float(v))
    v = raw.get("quant_gate_samples")
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        e.gate_samples = v
    if isinstance(raw.get("quant_inputs"), dict):
        e.input_spec = raw["quant_inputs"]
    if isinstance(raw.get("quant_gate_outputs"), list):
        e.gate_outputs = [str(x) for x in raw["quant_gate_outputs"]]
    if isinstance(raw.get("quant_nodes_to_exclude"), list):
        e.nodes_to_exclude = tuple(sorted({x for x in raw["quant_nodes_to_exclude"] if isinstance(x, str)}))
    v = raw.get("quant_min_int8_weight_share")
    if _number(v) and 0 <= v <= 1:
        e.min_int8_share = float(v)
    return e


def _checked(e: Entry, seen: dict[str, int], shown: str, base: Path, root: Path) -> list[Problem]:
    """The entry's own problems beyond the schema (a duplicate id, a path that leaves the
    repository or does not resolve, a sidecar that is a link out of it), added to `e.problems`
    and returned; its fields that look misspelt go to `e.warnings`. Resolves its paths."""
    found: list[Problem] = []

    def problem(key: str, message: str, fix: str) -> None:
        p = Problem(shown, f"models[{e.index}].{key}", message, fix, e.line_of(key))
        e.problems.append(p)
        found.append(p)

    if e.id in seen:
        problem("id", f"duplicate id '{e.id}' (also models[{seen[e.id]}])", "give every entry a unique id")
    seen.setdefault(e.id, e.index)
    for key in e.raw:  # kept and ignored, never refused; one that looks like a typo is said
        if (said := typo(key, e.raw)) is not None:
            e.warnings.append(Problem(shown, f"models[{e.index}].{key}", said, "", e.line_of(key)))
    for key, attr, relative_to in (
        ("onnx", "onnx_path", base),
        ("quant_calibration_set", "calibration_path", root),
        ("quant_eval_set", "eval_path", root),
        ("quant_qat_config", "qat_config_path", root),
    ):
        value = e.raw.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            setattr(e, attr, confine(value, relative_to, root, what=f"{shown}: models[{e.index}].{key}"))
        except UserError as err:
            problem(key, err.render(subject=False), "use a relative path that stays inside the repository")
        except (RuntimeError, OSError, ValueError) as err:  # a symlink loop, a NUL byte
            said = f"{value!r} cannot be resolved ({why_unresolved(err)})"
            problem(key, said, "point it at a file inside the repository")
    if e.onnx_path is not None:
        e.int8_path = sidecar_path(e.onnx_path)
        outside = _outside(e.int8_path, root)
        if outside is not None:  # a committed X.int8.onnx that is a symlink out of the repository
            said = f"its int8 sidecar {e.int8_path.name} leads outside the repository (to {outside})"
            problem("onnx", said, "commit the sidecar file itself, not a link")
    return found


def _shared_sidecars(entries: list[Entry], shown: str) -> list[Problem]:
    """Entries of different int8 modes naming one fp32 file share its one sidecar path: one file
    cannot be both, and producing one entry's sidecar overwrites the other's."""
    first: dict[Path, Entry] = {}
    found = []
    for e in entries:
        if e.int8_path is None or e.mode not in ("dynamic", "static", "qat") or e.problems:
            continue  # no sidecar, or a problem of its own to fix first
        other = first.setdefault(e.int8_path, e)
        if other is not e and other.mode != e.mode:
            p = Problem(
                shown,
                f"models[{e.index}].onnx",
                f"{e.id}: its sidecar {e.int8_path.name} is also '{other.id}''s, whose quant_mode is {other.mode}, "
                f"not {e.mode}; one file cannot be both",
                "give each mode its own fp32 file (a copy under another name), or one entry",
                e.line_of("onnx"),
            )
            e.problems.append(p)
            found.append(p)
    return found


def _outside(path: Path, root: Path) -> Path | None:
    """Where `path` really leads when that is outside `root` (a symlink out), else None."""
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        real = path.resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop
        return path
    root_r = root.resolve()
    return None if real == root_r or root_r in real.parents else real


def _number(v: Any) -> TypeGuard[int | float]:
    """A finite JSON number (JSON has no NaN, but Python's reader accepts it)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def producer_command(mode: str) -> str:
    """The command that makes the sidecar a mode ships."""
    return {"static": "quantgate ptq-static", "qat": "quantgate qat"}.get(mode, "quantgate ptq-dynamic")


class DigestMismatch(UserError):
    pass


def verify_digest(path: Path, expected: str | None, *, field_name: str, registry: Path) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise DigestMismatch(
            f"{field_name} of {path.name} does not match: registry {expected[:12]}..., "
            f"file {actual[:12]}...; refusing to load it",
            subject=str(registry),
            fix=f"re-produce the file or update {field_name}",
        )


def resolve(model_id: str, registry: str | Path = DEFAULT_REGISTRY, root: str | Path | None = None) -> Path:
    """The file a runtime should load for `model_id`: the int8 sidecar unless the mode is fp32.

    Verifies the digest the registry records for that file; a mismatch raises `DigestMismatch`.
    """
    reg = load_registry(registry, root)
    e = reg.get(model_id)
    if e.problems:
        raise e.problems[0]
    if e.mode == "fp32":
        target, digest, fname = e.onnx_path, e.sha256, "sha256"
    else:
        target, digest, fname = e.int8_path, e.int8_sha256, "int8_sha256"
    if target is None or not target.is_file():
        raise UserError(
            f"model '{model_id}' (mode {e.mode}) needs {target}, which does not exist",
            subject=str(reg.path),
            fix='produce it or set quant_mode "fp32"',
        )
    verify_digest(target, digest, field_name=fname, registry=reg.path)
    return target
