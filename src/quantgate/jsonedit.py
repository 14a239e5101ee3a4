"""JSON text edited in place: the spans of an object's members and an array's elements, found
from the JSON decoder's own positions, and one member of one registry row set or removed with
every other byte as it was.

The floor under `registry` (which reads each entry's and field's line from these spans) and
`registry_edit` (which locks, checks and writes a registry); it knows nothing of either.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import UserError

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def skip_ws(text: str, i: int) -> int:
    m = _WS.match(text, i)
    assert m is not None  # `[ \t\n\r]*` matches the empty string, so it matches at any index
    return m.end()


def object_members(text: str, start: int) -> tuple[list[dict], int]:
    """Spans of an object's members; `start` is the index of its `{`. Returns (members, end)."""
    assert text[start] == "{"
    i = skip_ws(text, start + 1)
    members: list[dict] = []
    if text[i] == "}":
        return members, i + 1
    while True:
        key_start = i
        key, i = _DECODER.raw_decode(text, i)
        key_end = i
        i = skip_ws(text, i)
        if text[i] != ":":
            raise ValueError(f"expected ':' at {i}")
        i = skip_ws(text, i + 1)
        value_start = i
        _, i = _DECODER.raw_decode(text, i)
        members.append(
            {"key": key, "key_start": key_start, "key_end": key_end, "value_start": value_start, "value_end": i}
        )
        i = skip_ws(text, i)
        if text[i] == "}":
            return members, i + 1
        if text[i] != ",":
            raise ValueError(f"expected ',' or '}}' at {i}")
        i = skip_ws(text, i + 1)


def array_elements(text: str, start: int) -> list[int]:
    """Start offsets of an array's elements; `start` is the index of its `[`."""
    i = skip_ws(text, start + 1)
    out: list[int] = []
    if text[i] == "]":
        return out
    while True:
        out.append(i)
        _, i = _DECODER.raw_decode(text, i)
        i = skip_ws(text, i)
        if text[i] == "]":
            return out
        if text[i] != ",":
            raise ValueError(f"expected ',' or ']' at {i}")
        i = skip_ws(text, i + 1)


REMOVE = object()  # a patch value: take the member out of the row


def set_field(text: str, index: int, key: str, value: Any) -> str:
    """`text` with `models[index][key] = value` (any JSON value; `REMOVE` takes the member out);
    everything else byte for byte as it was."""
    top = skip_ws(text, 0)
    top_members, _ = object_members(text, top)
    models = [m for m in top_members if m["key"] == "models"][-1]
    row_start = array_elements(text, models["value_start"])[index]
    members, _ = object_members(text, row_start)
    same = [m for m in members if m["key"] == key]
    if value is REMOVE:
        return _remove(text, row_start, members, same) if same else text
    literal = json.dumps(value)
    if same:
        m = same[-1]  # JSON parsers keep the last of duplicate keys
        return text[: m["value_start"]] + literal + text[m["value_end"] :]
    if not members:
        raise ValueError("empty registry row")
    anchor = next((j for j, m in enumerate(members) if m["key"] == "quant_mode"), len(members) - 1)
    m = members[anchor]
    # the whitespace before the anchor's key: its own line break and indentation
    lead_from = members[anchor - 1]["value_end"] if anchor else row_start + 1
    lead = text[lead_from : m["key_start"]].lstrip(" \t,") or " "  # keeps the LF/CRLF and indentation
    colon = text[m["key_end"] : m["value_start"]]
    insert = "," + lead + json.dumps(key) + colon + literal
    return text[: m["value_end"]] + insert + text[m["value_end"] :]


def _remove(text: str, row_start: int, members: list[dict], same: list[dict]) -> str:
    """`text` without the members in `same` (the row keeps its other members and layout)."""
    for m in sorted(same, key=lambda m: -m["key_start"]):
        members, _ = object_members(text, row_start)
        j = next(j for j, x in enumerate(members) if x["key_start"] == m["key_start"])
        if j > 0:  # from the end of the member before it: its comma and line go with it
            start, end = members[j - 1]["value_end"], members[j]["value_end"]
        elif len(members) > 1:  # the first member: up to the next member's key
            start, end = members[0]["key_start"], members[1]["key_start"]
        else:
            start, end = members[0]["key_start"], members[0]["value_end"]
        text = text[:start] + text[end:]
    return text


def patch(registry: Path, text: str, index: int, changes: dict[str, Any]) -> str:
    """`text` with every change of `changes` made to `models[index]` (a value, or `REMOVE`),
    checked to parse to the original document with those changes; one `UserError` line when it
    cannot be done without reformatting the file."""
    expected = json.loads(text)
    row = expected["models"][index]
    new = text
    try:
        for key, value in changes.items():
            if value is REMOVE:
                row.pop(key, None)
            else:
                row[key] = value
            new = set_field(new, index, key, value)
        ok = json.loads(new) == expected
    except (ValueError, IndexError, KeyError):
        ok = False
    if not ok:
        shown = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in changes.items() if v is not REMOVE)
        raise UserError(
            f"could not edit models[{index}] without reformatting the file",
            subject=str(registry),
            fix=f"set {shown} by hand",
        )
    return new
