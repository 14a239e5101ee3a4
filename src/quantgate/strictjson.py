"""Parsing JSON text as JSON defines it, not as Python's reader stretches it.

Python's `json.loads` accepts `NaN`, `Infinity` and `-Infinity`, reads `1e999` as infinity, raises
a bare `ValueError` for an integer of more than 4300 digits, a `RecursionError` for deep nesting,
keeps the last of duplicate keys in an object (where another reader, or a person, takes the
first), and hands back strings holding lone surrogates (`"\\ud800"`) that cannot be printed or
written as UTF-8. `loads` refuses each of them with a `BadJSON` that says where: line, column
and, when the value was kept, its JSON path (`models[3].quant_accuracy_budget_plcc`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import limits
from .text import plain

# A JSON string token whole (so nothing inside one is mistaken for a token outside).
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
# Outside strings: a made-up constant, or a number (an integer when it has no fraction or exponent).
_TOKEN = re.compile(_STRING + r"|(NaN|-?Infinity)|-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_BRACKETS = re.compile(_STRING + r"|([\[{])|([\]}])")
_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u([dD][89a-fA-F][0-9a-fA-F]{2})")


class BadJSON(ValueError):
    """Text that is not JSON, or JSON quantgate will not hold: `msg` at `lineno`:`colno`
    (None when unknown), `where` the JSON path of the value when there is one, and `fix`; a
    syntax error has no `fix` (the caller words it)."""

    def __init__(
        self,
        msg: str,
        lineno: int | None = None,
        colno: int | None = None,
        where: str | None = None,
        fix: str | None = None,
        path: list | None = None,
    ):
        self.msg, self.lineno, self.colno, self.where, self.fix = msg, lineno, colno, where, fix
        self.path = path  # the value's path as keys and indexes, when it is known
        super().__init__(self.located())

    def located(self) -> str:
        head = f"{self.lineno}:{self.colno}: " if self.lineno else ""
        return head + (f"{self.where}: " if self.where else "") + self.msg


class _Refused:
    """Stands in for a value `json.loads` would have made up (NaN, an infinity, a huge integer):
    the `ordinal`-th token of its `kind` ("constant", "float" or "int") in the text."""

    __slots__ = ("kind", "ordinal", "token")

    def __init__(self, kind: str, ordinal: int, token: str):
        self.kind, self.ordinal, self.token = kind, ordinal, token

    def described(self) -> tuple[str, str]:
        """What is wrong with the token, and the fix."""
        if self.kind == "constant":
            return f"{self.token} is not a JSON number", "write a finite number (JSON has no NaN or infinity)"
        if self.kind == "float":
            return f"{self.token} is too large for a number (it reads as infinity)", "write a finite number"
        return f"an integer of {len(self.token.lstrip('-')):,} digits is too long", "write a shorter number"


class _Hooks:
    """The decoder's hooks, one per token kind: a value `json.loads` would make up is kept as a
    `_Refused` (in `refused`, in text order), and an object with a repeated key is noted."""

    def __init__(self) -> None:
        self.refused: list[_Refused] = []
        self.counts = {"constant": 0, "float": 0, "int": 0}
        self.repeated = False

    def _seen(self, kind: str) -> int:
        self.counts[kind] += 1
        return self.counts[kind]

    def _refuse(self, kind: str, ordinal: int, token: str) -> _Refused:
        r = _Refused(kind, ordinal, token)
        self.refused.append(r)
        return r

    def constant(self, token: str) -> Any:
        return self._refuse("constant", self._seen("constant"), token)

    def number(self, token: str) -> Any:
        n = self._seen("float")
        v = float(token)
        return v if v - v == 0 else self._refuse("float", n, token)  # v - v == 0: finite

    def integer(self, token: str) -> Any:
        n = self._seen("int")
        try:
            return int(token)
        except ValueError:  # more digits than Python converts
            return self._refuse("int", n, token)

    def obj(self, pairs: list) -> dict:
        d = dict(pairs)
        if len(d) != len(pairs):
            self.repeated = True
        return d


def json_path(parts) -> str:
    """`models[3].quant_inputs.x`; a key that is not text (a lone surrogate) shown escaped."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            key = plain(str(p))
            out += f".{key}" if out else key
    return out or "(top level)"


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def loads(text: str, *, max_depth: int | None = None, surrogates: bool = False) -> Any:
    """The JSON value of `text`, or `BadJSON` (a `ValueError`) saying what and where. Lone
    surrogates are refused unless `surrogates` (then kept, for the caller to show escaped)."""
    data, bad = loads_keeping(text, max_depth=max_depth, surrogates=surrogates)
    if bad:
        raise bad[0]
    return data


def loads_keeping(text: str, *, max_depth: int | None = None, surrogates: bool = True) -> tuple[Any, list[BadJSON]]:
    """Like `loads`, but a refused value (NaN, an infinity, a huge integer) does not refuse the
    whole text: it is left out of its object (or list) and comes back as a `BadJSON` with its
    path, so a caller can refuse only the part that holds it (one registry entry, say). A key
    repeated in one object comes back the same way, at the repeat (the value kept is the last,
    as in every Python reader). Syntax errors and nesting still raise. Lone surrogates are kept
    (`surrogates=True`) or refused."""
    depth_cap = limits.MAX_JSON_DEPTH if max_depth is None else max_depth
    hooks = _Hooks()
    try:
        data = json.loads(
            text,
            parse_constant=hooks.constant,
            parse_float=hooks.number,
            parse_int=hooks.integer,
            object_pairs_hook=hooks.obj,
        )
    except json.JSONDecodeError as e:
        raise BadJSON(e.msg, e.lineno, e.colno) from None
    except RecursionError:
        raise _too_deep(text, depth_cap) from None
    bad: list[BadJSON] = []
    for r in hooks.refused:
        problem = _refusal(text, data, r, depth_cap)
        bad.append(problem)
        if not problem.path:
            return data, bad  # a refused value that is the document itself: nothing to keep
        data = _without(data, problem.path)
    if hooks.repeated:
        bad += _repeated_keys(text)
    if not surrogates:
        _refuse_lone_surrogate(text, data, depth_cap)
    return data, bad


def _refusal(text: str, data: Any, r: _Refused, depth_cap: int) -> BadJSON:
    """The refused value `r` at its token's line and column, with its path in `data` (`path` None
    when it is not found there)."""
    line, col = _token_position(text, r)
    found = _find(data, lambda v: v is r, depth_cap)
    where = found[0] if found is not None and found[1] is r else None
    what, fix = r.described()
    return BadJSON(what, line, col, None if where is None else json_path(where), fix, where)


def _refuse_lone_surrogate(text: str, data: Any, depth_cap: int) -> None:
    """`BadJSON` at the first string (or key) of `data` that holds a lone surrogate, if any."""
    issue = _find(data, _lone_surrogate, depth_cap)
    if issue is None:
        return
    parts, value = issue
    if value is _TOO_DEEP:
        raise _too_deep(text, depth_cap)
    line, col = _surrogate_position(text) or (None, None)
    raise BadJSON(
        "holds a lone surrogate (a \\ud800-\\udfff escape without its pair), which is not text",
        line,
        col,
        json_path(parts),
        "write the character itself, or both halves of its \\u pair",
    )


_SCAN = re.compile(_STRING + r"|[{}\[\],]")


def _repeated_keys(text: str) -> list[BadJSON]:
    """Every key repeated in its object, at the repeat, in document order (one pass over text
    the decoder has accepted, so it is well formed)."""
    found: list[BadJSON] = []
    # one frame per open container: [is_object, path, keys seen (key -> line), expecting a key, index]
    stack: list[list] = []
    pending: Any = None  # the key (or index) the next value goes under
    for m in _SCAN.finditer(text):
        tok = m.group(0)
        top = stack[-1] if stack else None
        if tok in "{[":
            path = [] if top is None else [*top[1], pending]
            stack.append([tok == "{", path, {}, True, 0])
        elif tok in "]}":
            stack.pop()
        elif tok == ",":
            if top is not None:
                top[3] = True
                top[4] += 1
                if not top[0]:
                    pending = top[4]
        elif top is not None and top[0] and top[3]:  # a key
            key = json.loads(tok)
            line, col = _line_col(text, m.start())
            if key in top[2]:
                where = [*top[1], key]
                found.append(
                    BadJSON(
                        f"the key '{plain(key)}' is repeated (first at line {top[2][key]}); JSON readers "
                        "disagree on which value counts",
                        line,
                        col,
                        json_path(where),
                        "keep one of them",
                        where,
                    )
                )
            else:
                top[2][key] = line
            top[3] = False
            pending = key
        if tok == "[":
            pending = 0  # the array's first element
    return found


def _without(data: Any, path: list) -> Any:
    """`data` with the value at `path` left out of its object, or set to None in its list."""
    parent = data
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = None
    return data


_TOO_DEEP = object()


def _lone_surrogate(v: Any) -> bool:
    if not isinstance(v, str) or v.isascii():
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _find(data: Any, test, depth_cap: int) -> tuple[list, Any] | None:
    """The first value (or key) in document order that passes `test`, with its path; a value
    nested deeper than `depth_cap` comes back as `_TOO_DEEP`. Iterative: no recursion limit."""
    stack: list[tuple[Any, list, int]] = [(data, [], 0)]
    while stack:
        v, path, depth = stack.pop()
        if test(v):
            return path, v
        if isinstance(v, (dict, list)):
            if depth >= depth_cap:
                return path, _TOO_DEEP
            if isinstance(v, dict):
                for k in v:
                    if test(k):
                        return [*path, k], k
                items = list(v.items())
            else:
                items = list(enumerate(v))
            stack.extend((child, [*path, k], depth + 1) for k, child in reversed(items))
    return None


def _token_position(text: str, r: _Refused) -> tuple[int | None, int | None]:
    """Where the `r.ordinal`-th token of `r.kind` starts (the parser met them in text order)."""
    n = 0
    for m in _TOKEN.finditer(text):
        if m.group(0)[0] == '"':
            continue
        if m.group(1) is not None:
            kind = "constant"
        else:
            kind = "float" if m.group(2) is not None or m.group(3) is not None else "int"
        if kind == r.kind:
            n += 1
            if n == r.ordinal:
                return _line_col(text, m.start())
    return None, None


def _surrogate_position(text: str) -> tuple[int, int] | None:
    escapes = list(_ESCAPE.finditer(text))
    i = 0
    while i < len(escapes):
        m = escapes[i]
        high = m.group(1)[1].lower() in "89ab"
        if high and i + 1 < len(escapes):
            nxt = escapes[i + 1]
            if nxt.start(1) - 2 == m.end(1) and nxt.group(1)[1].lower() in "cdef":
                i += 2
                continue
        return _line_col(text, m.start(1) - 2)
    return None


def _too_deep(text: str, depth_cap: int) -> BadJSON:
    depth = 0
    for m in _BRACKETS.finditer(text):
        if m.group(1):
            depth += 1
            if depth > depth_cap:
                line, col = _line_col(text, m.start(1))
                return BadJSON(f"nested more than {depth_cap} levels deep", line, col, fix=_FLATTEN)
        elif m.group(2):
            depth -= 1
    return BadJSON(f"nested more than {depth_cap} levels deep", fix=_FLATTEN)


_FLATTEN = "flatten it (quantgate reads no document nested that deep)"
