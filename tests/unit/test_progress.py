"""Progress lines of long loops: silent in the library and for short loops; ten lines in a log;
one line rewritten in place on a terminal."""

import io

from quantgate import progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def _run(stream, n, step_s, clock=None):
    clock = clock or Clock()
    progress.enable(stream)
    try:
        with progress.counting("decoding images", n, clock=clock) as tick:
            for _ in range(n):
                clock.t += step_s
                tick()
    finally:
        progress.disable()
    return stream.getvalue()


def test_the_library_prints_nothing_unless_enabled(capsys):
    with progress.counting("decoding images", 1000, clock=Clock()) as tick:
        for _ in range(1000):
            tick()
    assert capsys.readouterr() == ("", "")


def test_a_loop_that_ends_within_a_second_shows_nothing():
    assert _run(io.StringIO(), 500, 0.001) == ""


def test_a_long_loop_in_a_log_prints_one_line_per_tenth():
    out = _run(io.StringIO(), 5000, 0.01).splitlines()
    assert len(out) <= 10 and out[-1].startswith("decoding images: 5000/5000 (100%)")
    counts = [int(ln.split(": ")[1].split("/")[0]) for ln in out]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_on_a_terminal_the_line_is_rewritten_and_ends_with_a_newline():
    out = _run(Tty(), 5000, 0.01)
    assert out.startswith("\r") and out.endswith("\n") and out.count("\n") == 1
    assert out.rstrip("\n").rsplit("\r", 1)[1].startswith("decoding images: 5000/5000 (100%)")
