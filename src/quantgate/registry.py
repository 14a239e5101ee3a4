"""Load and validate a model registry; resolve each entry's files below the repository root.

The schema ships as package data (`schemas/registry.schema.json`). Unknown fields are kept
and ignored. Problems with one entry stay with that entry so the others can still be gated;
a file that is not a registry at all is a `UserError`: one that is not a regular file, is over
`limits.MAX_REGISTRY_BYTES` or lists more than `limits.MAX_REGISTRY_ENTRIES` models, is not
UTF-8, or is not JSON as JSON defines it (`strictjson`: no NaN or infinity, no lone surrogate,
no nesting deeper than `limits.MAX_JSON_DEPTH`). Loading takes time linear in the file's size.
"""

from __future__ import annotations

import bisect
import difflib
import errno
import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard

import jsonschema

from . import jsonedit, limits, strictjson
from .errors import Problem, UserError, param
from .paths import confine, find_repo_root, sha256_file, sidecar_path
from .schema import load_schema

DEFAULT_REGISTRY = "model/tiny/registry.json"
DEFAULT_BUDGET = 0.01
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
                f"cannot be resolved ({_why(err)})", subject=str(onnx), fix="pass the model file itself"
            ) from None
        for e in self.entries:
            if e.onnx_path is not None and e.onnx_path == target:
                return e
        return None


_json_path = strictjson.json_path


def _why(e: BaseException) -> str:
    """Why a path does not resolve, in a few words."""
    if isinstance(e, RuntimeError) or (isinstance(e, OSError) and e.errno == errno.ELOOP):
        return "a symlink loop"
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    return str(e)


def _fix_for(err: jsonschema.ValidationError) -> str:
    kw, field_name = err.validator, (err.path[-1] if err.path else None)
    if kw == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        name = missing[0] if missing else "the field"
        if name == "quant_calibration_set":
            return (
                'add "quant_calibration_set": "path/to/set.npz" (relative to the '
                'repository root), or use quant_mode "dynamic"'
            )
        return f'add "{name}"'
    if kw == "enum":
        return "use one of " + ", ".join(json.dumps(v) for v in err.validator_value)
    if kw == "pattern" and field_name in ("sha256", "int8_sha256"):
        return "write the digest as 64 lowercase hex characters (sha256sum prints it)"
    if kw == "pattern":
        return f"the value must match {err.validator_value}"
    if kw in ("minimum", "maximum"):
        return (
            f"use a number between 0 and 1 (the default is {DEFAULT_BUDGET})"
            if field_name == "quant_accuracy_budget_plcc"
            else f"respect {kw} {err.validator_value}"
        )
    if kw == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"give a JSON {want}"
    if kw == "additionalProperties":
        return "remove the unknown key (allowed: shape, low, high, dims)"
    if kw == "minLength":
        return "give a non-empty value"
    return f"see the registry reference (docs/registry.md), rule '{kw}'"


_ID = re.compile(r'"id"\s*:\s*("[^"\\]*(?:\\.[^"\\]*)*")')


def _entry_lines(text: str, models: list) -> tuple[list[int | None], list[dict[str, int]]]:
    """Each entry's line (that of its `"id": "<its id>"`) and the line of each of its fields, in
    one pass over the text (None / {} where unknown). Entries and fields are found from the JSON
    decoder's own positions."""
    try:
        top, _ = jsonedit.object_members(text, jsonedit.skip_ws(text, 0))
        starts = jsonedit.array_elements(text, [m for m in top if m["key"] == "models"][-1]["value_start"])
    except (ValueError, IndexError, RecursionError):
        starts = []
    if len(starts) != len(models):
        return [None] * len(models), [{} for _ in models]
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    out: list[int | None] = []
    fields: list[dict[str, int]] = []
    for k, raw in enumerate(models):
        keyed: dict[str, int] = {}
        if isinstance(raw, dict) and text[starts[k]] == "{":
            try:
                members, _ = jsonedit.object_members(text, starts[k])
            except (ValueError, IndexError, RecursionError):
                members = []
            for member in members:  # JSON parsers keep the last of duplicate keys: so does this
                keyed[member["key"]] = line_at(member["key_start"])
        fields.append(keyed)
        mid = raw.get("id") if isinstance(raw, dict) else None
        pos = None
        if isinstance(mid, str):
            end = starts[k + 1] if k + 1 < len(starts) else len(text)
            for m in _ID.finditer(text, starts[k], end):
                try:
                    found = json.loads(m.group(1))
                except ValueError:
                    continue
                if found == mid:
                    pos = m.start()
                    break
        out.append(None if pos is None else line_at(pos))
    return out, fields


STDIN_NAME = "<stdin>"  # how a registry read from standard input (`--registry -`) is named


def shown_name(path: str | Path) -> str:
    return STDIN_NAME if str(path) == limits.STDIN else str(path)


def _read_registry(path: Path) -> tuple[str, Any, list[strictjson.BadJSON]]:
    shown = shown_name(path)
    try:
        raw = limits.read_input(path, limits.REGISTRY_BYTES, what="registry")
    except FileNotFoundError:
        raise UserError(
            "registry not found", subject=shown, fix=f"pass {param('registry')} PATH (default {DEFAULT_REGISTRY})"
        ) from None
    except IsADirectoryError:
        raise UserError("is a folder", subject=shown, fix="pass the registry JSON file itself") from None
    except OSError as e:
        raise UserError(f"cannot read it ({_why(e)})", subject=shown, fix="pass a readable registry file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x})", subject=shown, line=line, fix="a registry is a JSON file"
        ) from None
    try:
        data, bad = strictjson.loads_keeping(text)  # a NaN in one entry refuses that entry, not the file
    except strictjson.BadJSON as e:
        if e.fix is None:
            raise UserError(
                f"not valid JSON ({e.msg})", subject=f"{shown}:{e.lineno}:{e.colno}", fix="fix the syntax there"
            ) from None
        loc = f"{shown}:{e.lineno}:{e.colno}" if e.lineno else shown
        raise UserError(e.msg, subject=loc, field=e.where, fix=e.fix) from None
    for value in bad:
        where = value.path or []
        if not (len(where) >= 3 and where[0] == "models" and isinstance(where[1], int)):
            loc = f"{shown}:{value.lineno}:{value.colno}" if value.lineno else shown
            raise UserError(value.msg, subject=loc, field=value.where, fix=value.fix)
    return text, data, bad


@cache
def entry_fields() -> tuple[str, ...]:
    """The fields of an entry quantgate reads (the schema's)."""
    return tuple(load_schema("registry.schema.json")["$defs"]["entry"]["properties"])


# Entry fields in quantgate's own namespaces; an unknown one is a typo, never a user's own field.
OWN_PREFIXES = ("quant_", "int8_")


def _typo(key: str, present: Collection[str] = ()) -> str | None:
    """What to say about an entry field quantgate does not know when it looks like a misspelling
    of one it does: in quantgate's namespaces (`quant_`, `int8_`) any unknown name; elsewhere a
    name of five letters or more close to a known one the entry lacks (`sha265`, not `uid` or a
    `sha512` beside `sha256`). Other fields (a project's own) are kept and ignored silently."""
    known = entry_fields()
    if not isinstance(key, str) or key in known:
        return None
    own = key.startswith(OWN_PREFIXES)
    if not own and len(key) < 5:
        return None
    missing = [k for k in known if k not in present]
    words = set(key.split("_"))
    close = [k for k in missing if own and words <= set(k.split("_"))]  # quant_budget: the budgets
    close = close or difflib.get_close_matches(key, missing, n=1, cutoff=0.8)
    if not close and not own:
        return None
    said = f"'{key}' is not a quantgate field, so quantgate ignores it"
    if close:
        return f"{said}; did you mean {' or '.join(repr(k) for k in close[:3])}?"
    return f"{said}; {' and '.join(OWN_PREFIXES)} names are quantgate's: give a field of your own another prefix"


def load_registry(path: str | Path = DEFAULT_REGISTRY, root: str | Path | None = None) -> Registry:
    """Read, validate and resolve a registry. Raises `UserError` only when it is unusable whole."""
    path = Path(path)
    text, data, bad_values = _read_registry(path)
    if root is not None and not Path(root).is_dir():
        raise UserError("is not a folder", subject=f"{param('root')} {root}", fix="name the repository's folder")
    # a registry on standard input lives in the current folder: its paths are relative to it
    root_p = Path(root).resolve() if root is not None else find_repo_root(path)
    shown = shown_name(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise Problem(
            shown, "", 'top level must be an object with a "models" array', 'wrap the entries as {"models": [...]}'
        )
    most = limits.REGISTRY_ENTRIES.value()
    if len(data["models"]) > most:
        raise UserError(
            f"lists {len(data['models']):,} models, over the limit of {most:,}",
            subject=shown,
            field="models",
            fix=f"split the registry, or {limits.REGISTRY_ENTRIES.fix()}",
        )
    lines, field_lines = _entry_lines(text, data["models"])
    problems: list[Problem] = []
    per_entry: dict[int, list[Problem]] = {}
    validator = jsonschema.Draft202012Validator(load_schema("registry.schema.json"))
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError:
        raise UserError("nested too deeply to check", subject=shown, fix="flatten it") from None
    for err in errors:
        parts = list(err.absolute_path)
        line = None
        if len(parts) >= 2 and parts[0] == "models" and isinstance(parts[1], int):
            line = lines[parts[1]]
            if len(parts) >= 3 and isinstance(parts[2], str):  # the offending field's own line
                line = field_lines[parts[1]].get(parts[2], line)
            elif err.validator == "required":  # a missing field: the entry's line
                line = lines[parts[1]]
        msg = err.message if len(err.message) < 200 else err.message[:200] + "..."
        p = Problem(shown, _json_path(parts), msg, _fix_for(err), line)
        problems.append(p)
        if len(parts) >= 2 and parts[0] == "models" and isinstance(parts[1], int):
            per_entry.setdefault(parts[1], []).append(p)

    for bad in bad_values:  # refused values inside an entry: that entry's problems, at their line
        assert bad.path is not None  # kept only when it lies inside models[i]
        index = bad.path[1]
        p = Problem(shown, bad.where or f"models[{index}]", bad.msg, bad.fix or "write a finite number", bad.lineno)
        problems.append(p)
        per_entry.setdefault(index, []).append(p)

    base = path.resolve().parent
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(data["models"]):
        if not isinstance(raw, dict):
            continue  # the schema already reported it
        raw_id = raw.get("id")
        mid = raw_id if isinstance(raw_id, str) else f"models[{i}]"
        mode = raw.get("quant_mode", DEFAULT_MODE)
        budget = raw.get("quant_accuracy_budget_plcc", DEFAULT_BUDGET)
        e = Entry(
            index=i,
            raw=raw,
            id=mid,
            mode=mode if mode in MODES else str(mode),
            budget=float(budget) if _number(budget) else DEFAULT_BUDGET,
            line=lines[i],
            field_lines=field_lines[i],
            problems=list(per_entry.get(i, [])),
        )
        where = f"models[{i}]"
        if mid in seen:
            p = Problem(
                shown,
                f"{where}.id",
                f"duplicate id '{mid}' (also models[{seen[mid]}])",
                "give every entry a unique id",
                e.line_of("id"),
            )
            e.problems.append(p)
            problems.append(p)
        seen.setdefault(mid, i)
        for key in raw:  # kept and ignored, never refused; one that looks like a typo is said
            if (typo := _typo(key, raw)) is not None:
                e.warnings.append(Problem(shown, f"{where}.{key}", typo, "", e.line_of(key)))
        for key, attr, relative_to in (
            ("onnx", "onnx_path", base),
            ("quant_calibration_set", "calibration_path", root_p),
            ("quant_eval_set", "eval_path", root_p),
            ("quant_qat_config", "qat_config_path", root_p),
        ):
            value = raw.get(key)
            if not isinstance(value, str) or not value:
                continue
            try:
                setattr(e, attr, confine(value, relative_to, root_p, what=f"{shown}: {where}.{key}"))
            except UserError as err:
                p = Problem(
                    shown,
                    f"{where}.{key}",
                    err.render(subject=False),
                    "use a relative path that stays inside the repository",
                    e.line_of(key),
                )
                e.problems.append(p)
                problems.append(p)
            except (RuntimeError, OSError, ValueError) as err:  # a symlink loop, a NUL byte
                p = Problem(
                    shown,
                    f"{where}.{key}",
                    f"{value!r} cannot be resolved ({_why(err)})",
                    "point it at a file inside the repository",
                    e.line_of(key),
                )
                e.problems.append(p)
                problems.append(p)
        if e.onnx_path is not None:
            e.int8_path = sidecar_path(e.onnx_path)
            outside = _outside(e.int8_path, root_p)
            if outside is not None:  # a committed X.int8.onnx that is a symlink out of the repository
                p = Problem(
                    shown,
                    f"{where}.onnx",
                    f"its int8 sidecar {e.int8_path.name} leads outside the repository (to {outside})",
                    "commit the sidecar file itself, not a link",
                    e.line_of("onnx"),
                )
                e.problems.append(p)
                problems.append(p)
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
        entries.append(e)
    problems += _shared_sidecars(entries, shown)
    return Registry(path=path, root=root_p, data=data, entries=entries, problems=problems)


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
