"""The exit-code contract and the one exception type a user's mistake raises.

0 = every gated model within budget, 1 = at least one over budget,
2 = at least one could not be judged (or the command itself was misused),
3 = nothing was gated (no entry selected, or every selected entry ships fp32).

A `UserError` carries its parts (subject, field, problem, fix) and is worded at the edge: the
library names its own parameters with `param("samples")`; the CLI shows that as `--samples`,
the action as `input samples`, and a Python caller sees `samples` (`str(error)`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .text import plain

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_ERROR = 2
EXIT_NOTHING = 3

# A parameter reference inside error text, between two private-use characters: never typed by a
# user, so rewording it at the edge cannot touch anything else.
_P_OPEN, _P_CLOSE = "\ue000", "\ue001"
_PARAM_RE = re.compile(f"{_P_OPEN}([A-Za-z_][A-Za-z0-9_]*){_P_CLOSE}")


def param(name: str) -> str:
    """A library parameter named in an error text; the edge words it (`--name`, `input name`)."""
    return f"{_P_OPEN}{name}{_P_CLOSE}"


def python_name(name: str) -> str:
    return name


def word_params(text: str, name_of: Callable[[str], str] = python_name) -> str:
    """`text` with every `param(...)` reference replaced by `name_of(name)`."""
    return _PARAM_RE.sub(lambda m: name_of(m.group(1)), text)


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """An exception's (or any) text on one line, white space folded, cut at `limit` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2, never a traceback.

    Parts, each optional except `problem`: `subject` (the file, model or parameter concerned),
    `line` (the subject's line, for a file), `field` (where in it: a JSON path, a key), `problem`
    (what is wrong) and `fix` (what to do). `UserError("one whole sentence")` is the short form
    for a message that is already complete. `entry_field` names the registry entry field the
    mistake is about, where there is one (the gate's checks set it; `validate` reports the error
    at that field's line).
    """

    exit_code = EXIT_ERROR
    fix_label = ""  # said before the fix: "" ("...; FIX"), or "fix: " for a registry's problems

    def __init__(
        self,
        problem: str,
        *,
        subject: str | None = None,
        field: str | None = None,
        fix: str | None = None,
        line: int | None = None,
    ):
        self.subject = subject
        self.field = field
        self.problem = problem
        self.fix = fix
        self.line = line
        self.entry_field: str | None = None
        super().__init__(self.render())

    def render(
        self, name_of: Callable[[str], str] = python_name, *, subject: bool = True, fix: bool = True, field: bool = True
    ) -> str:
        """The one line, with parameter references worded by `name_of`; without the subject
        (and its line) when `subject` is False, without the fix when `fix` is False, without the
        field when `field` is False (the caller's place names it)."""
        at = f"{self.subject}:{self.line}" if self.subject and self.line else self.subject
        head = ": ".join(p for p in (at if subject else None, self.field if field else None, self.problem) if p)
        text = f"{head}; {self.fix_label}{self.fix}" if self.fix and fix else head
        return plain(word_params(text, name_of))

    @property
    def message(self) -> str:
        return self.render()

    def __str__(self) -> str:
        return self.render()


class Problem(UserError):
    """One thing wrong with a registry, found while reading or checking it and kept with its
    entry (so the other entries can still be gated) rather than raised at once: the registry file
    (`file`, the subject), the line, the JSON path (`where`, the field), what is wrong and how to
    fix it, shown as `file:line: where: message; fix: fix`."""

    fix_label = "fix: "

    def __init__(self, file: str, where: str, message: str, fix: str = "", line: int | None = None):
        super().__init__(message, subject=file, field=where, fix=fix or None, line=line)

    @property
    def file(self) -> str:
        return self.subject or ""

    @property
    def where(self) -> str:
        return self.field or ""

    @property
    def message(self) -> str:  # the problem alone: the registry's lines say the rest themselves
        return self.problem
