"""Reading a registry file, below `registry` (which builds the entries): the bytes (bounded, a
regular file), the text (UTF-8) and the JSON (`strictjson`), the line of each entry and of each
of its fields (`jsonedit`'s spans), and the wording of what is wrong: a schema error's fix, a
field that looks like a misspelt quantgate field.
"""

from __future__ import annotations

import bisect
import difflib
import errno
import json
import re
from collections.abc import Collection
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from . import jsonedit, limits, strictjson
from .errors import Problem, UserError, param
from .schema import load_schema

DEFAULT_REGISTRY = "model/tiny/registry.json"
DEFAULT_BUDGET = 0.01
_json_path = strictjson.json_path


def why_unresolved(e: BaseException) -> str:
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


def entry_lines(text: str, models: list) -> tuple[list[int | None], list[dict[str, int]]]:
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


def read_registry(path: Path) -> tuple[str, Any, list[strictjson.BadJSON]]:
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
        raise UserError(
            f"cannot read it ({why_unresolved(e)})", subject=shown, fix="pass a readable registry file"
        ) from None
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


def typo(key: str, present: Collection[str] = ()) -> str | None:
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


def schema_problems(
    data: dict, lines: list[int | None], field_lines: list[dict[str, int]], shown: str, bad_values: list
) -> tuple[list[Problem], dict[int, list[Problem]]]:
    """Every schema error of `data` and every refused value inside an entry (`bad_values`, from
    `strictjson.loads_keeping`), each at its line; and those of each entry, by its index."""
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
    return problems, per_entry
