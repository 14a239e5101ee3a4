"""Standard output and error when the reader goes away (`quantgate gate | head -1`).

A closed pipe is not a verdict. Python ignores SIGPIPE, so a write to a pipe nobody reads raises
`BrokenPipeError`, which click would turn into exit code 1, the gate's "over budget". Instead,
the command's streams are wrapped: the first write that finds the pipe closed points the stream
at /dev/null (so nothing else, not even the interpreter's flush at exit, raises again) and the
run carries on, every model measured and every file written. The process then exits 141
(128 + SIGPIPE), what a shell reports for a program the closed pipe killed, and a code no
verdict uses.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE

_broken: set[str] = set()


class PipeGuard(io.TextIOBase):
    """A text stream that swallows `BrokenPipeError` and remembers it."""

    def __init__(self, stream: Any, name: str):
        super().__init__()
        self._stream = stream
        self._name = name

    def _closed_pipe(self) -> None:
        _broken.add(self._name)
        with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def write(self, s: str) -> int:
        if self._name in _broken:
            return len(s)
        try:
            return self._stream.write(s)
        except BrokenPipeError:
            self._closed_pipe()
            return len(s)

    def flush(self) -> None:
        if self._name in _broken:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed_pipe()

    def isatty(self) -> bool:
        return self._name not in _broken and self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors

    @property
    def buffer(self) -> Any:
        return self._stream.buffer


def guard() -> None:
    """Wrap sys.stdout and sys.stderr (once per process)."""
    if not isinstance(sys.stdout, PipeGuard) and sys.stdout is not None:
        sys.stdout = PipeGuard(sys.stdout, "stdout")
    if not isinstance(sys.stderr, PipeGuard) and sys.stderr is not None:
        sys.stderr = PipeGuard(sys.stderr, "stderr")


def broken() -> bool:
    """True once a write found standard output (or error) closed by its reader."""
    return bool(_broken)
