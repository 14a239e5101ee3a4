"""Text that came from data (model ids, reasons, notes, paths, inputs), made safe where it is shown.

A registry, a model or an action input comes from a pull request and may be hostile: an id like
`x\\n::stop-commands::deadbeef` printed raw would start a line the Actions runner obeys, a `\\r`
would hide a `[FAIL ]` tag on a terminal, a `|` would add a column to a markdown table and an
`@name` would ping someone. Every place that shows such text goes through one of these:

- `plain`: one terminal or log line: control, bidi and other invisible characters, and lone
  surrogates, become visible escapes (`\\n`, `\\x1b`, `\\u202e`), so data can never start a line;
- `log_line`: a line as printed: `plain`, and nothing in it the Actions runner reads as a
  workflow command (a `::` at the start, a `##[` anywhere);
- `cell` / `code`: one markdown table cell or inline code span, escaped and mention-free;
- `neutralise_mentions`: `@name` that pings nobody.
"""

from __future__ import annotations

import re
import shlex
import unicodedata

ZWSP = "\u200b"
# An @ starts a mention unless a letter or digit comes right before it (an e-mail address).
_MENTION_RE = re.compile(r"(?<![A-Za-z0-9])@(?=[A-Za-z0-9_\-])")


def _visible(ch: str) -> str:
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _hidden(ch: str) -> bool:
    """Characters that do not show as themselves on one line: C0/C1 controls, format characters
    (bidi overrides, zero-width joiners), line/paragraph separators, lone surrogates."""
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf", "Zl", "Zp", "Cs")


def plain(text: object) -> str:
    """`text` as one visible line: every hidden character escaped."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(_visible(ch) if _hidden(ch) else ch for ch in s)


def log_line(text: object) -> str:
    """One printed line that the Actions runner cannot take for a workflow command: `plain`,
    then `no_command`."""
    return no_command(plain(text))


def no_command(line: str) -> str:
    """`line` with what the Actions runner would obey shown escaped. The runner takes a line that
    starts with `::` once leading white space is dropped for a workflow command, and a line
    holding `##[` anywhere (the older form): `\\x3a:`, `#\\x23[` instead. quantgate's own commands
    are printed apart (`quantgate.action.sinks.emit`)."""
    s = line.replace("##[", "#\\x23[")
    body = s.lstrip()
    if body.startswith("::"):
        lead = len(s) - len(body)
        s = s[:lead] + "\\x3a" + s[lead + 1 :]
    return s


def neutralise_mentions(text: str) -> str:
    """`@name` -> `@\u200bname`: reads the same, pings nobody (e-mail addresses untouched)."""
    return _MENTION_RE.sub("@" + ZWSP, text)


def cell(text: object) -> str:
    """Data made safe for one markdown table cell (or a list item): one line; `|`, `\\`, `<`, `>`
    and backticks escaped; no mentions."""
    s = " ".join(plain(text).split())
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("`", "\\`")
    return neutralise_mentions(s)


def code(text: object) -> str:
    """Inline code that cannot be broken out of (backticks in the text get a longer fence), safe
    inside a table cell."""
    s = neutralise_mentions(" ".join(plain(text).split()).replace("|", "\\|"))
    run = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (run + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


_SHELL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shell_word(arg: str) -> str:
    """`arg` as one shell word on one line: `shlex.quote`, or, for text holding characters that
    do not print (a line break, an escape, a bidi override, a lone surrogate), bash's `$'...'`
    with each of them written as its escape, so that a command never spans lines."""
    if arg.isprintable():
        return shlex.quote(arg)
    out = []
    for ch in arg:
        code = ord(ch)
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _SHELL_ESCAPES:
            out.append(_SHELL_ESCAPES[ch])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "$'" + "".join(out) + "'"
