"""Progress through a long loop (hashing or decoding thousands of images), for the person waiting.

The library prints nothing: progress is off until the command line turns it on (`enable`), and
then it goes to standard error. Nothing shows for a loop that ends within `QUIET_S`; after that,
on a terminal one line is rewritten in place, and in a log (no terminal) a line is printed at
every tenth of the way, so a CI log shows ten lines, not ten thousand.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

QUIET_S = 1.0
REFRESH_S = 0.2
_stream: TextIO | None = None


def enable(stream: TextIO | None = None) -> None:
    """Show progress on `stream` (default: standard error); `disable()` turns it off again."""
    global _stream
    _stream = stream or sys.stderr


def disable() -> None:
    global _stream
    _stream = None


@contextmanager
def counting(label: str, total: int, *, clock: Callable[[], float] = time.monotonic) -> Iterator[Callable[[], None]]:
    """`with counting("decoding images", n) as tick:` then `tick()` once per item."""
    stream = _stream
    if stream is None or total <= 0:
        yield lambda: None
        return
    tty = stream.isatty()
    start = clock()
    state = {"done": 0, "shown_at": 0.0, "tenth": 0, "shown": False}

    def show(final: bool = False) -> None:
        done = state["done"]
        secs = clock() - start
        line = f"{label}: {done}/{total} ({100 * done // total}%) {secs:.1f}s"
        if tty:
            stream.write("\r" + line + ("\n" if final else ""))
        else:
            stream.write(line + "\n")
        stream.flush()
        state["shown"] = True

    def tick() -> None:
        state["done"] += 1
        now = clock()
        if now - start < QUIET_S:
            return
        if tty:
            if now - state["shown_at"] >= REFRESH_S:
                state["shown_at"] = now
                show()
        else:
            tenth = 10 * state["done"] // total
            if tenth > state["tenth"]:
                state["tenth"] = tenth
                show()

    try:
        yield tick
    finally:
        if state["shown"] and (tty or state["tenth"] < 10):
            show(final=True)
