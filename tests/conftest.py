"""Shared test helpers: run the `quantgate` command (in this process, or in a fresh one where the
process boundary is what a test checks), check the error contract, and turn skips for missing
tools into failures under CI."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Fixtures shared by the unit and CLI tests of one topic live beside this file.
pytest_plugins = ["action_support", "comment_support"]


def run_cli(
    *args, cwd=None, env=None, check_rc=None, timeout=300, input=None, clean_env=False
) -> subprocess.CompletedProcess:
    """`quantgate ARGS` as a user runs it, in this process: the command's own entry point
    (`quantgate.cli.main`, what `python -m quantgate` calls) with the environment, the working
    directory, standard input and file descriptors 1 and 2 of a fresh process, all put back
    afterwards. Output is captured at the descriptors, so what ONNX Runtime's C++ code or a child
    process prints is caught too, and warnings and log records reach standard error as they would
    without pytest. `env` is added to this process's environment, or with `clean_env` is the whole
    environment; an `env` that sets a PYTHON* variable (read only as an interpreter starts) runs a
    fresh process. `timeout` applies to that; in this process a hang hangs the test, as it would
    the user. The process boundary itself (closed pipes and exit 141, signals, the interpreter's exit) is
    tested with `run_cli_process`."""
    if any(k.startswith("PYTHON") and v != os.environ.get(k) for k, v in (env or {}).items()):
        # a variable the interpreter reads as it starts: only a new one sees it
        return run_cli_process(
            *args, cwd=cwd, env=env, check_rc=check_rc, timeout=timeout, input=input, clean_env=clean_env
        )
    full_env = dict(env or {}) if clean_env else {**os.environ, **(env or {})}
    proc = _in_process([str(a) for a in args], cwd=cwd, env=full_env, input=input)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def run_cli_process(
    *args, cwd=None, env=None, check_rc=None, timeout=300, input=None, clean_env=False
) -> subprocess.CompletedProcess:
    """Run `python -m quantgate ...` in a fresh process, as a user would."""
    full_env = dict(env or {}) if clean_env else {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "quantgate", *map(str, args)],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=isinstance(input, str) or input is None,
        timeout=timeout,
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


# What a fresh interpreter shows (Python's default warning filters, in the order it applies them).
_DEFAULT_WARNING_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _reset_cli_state() -> None:
    """What a fresh process would start from: the state the command keeps at module level."""
    from quantgate import progress
    from quantgate.cli import base, streams

    streams._broken.clear()
    base._warned_aliases.clear()
    base._terminated = False
    progress.disable()
    if "onnxruntime" in sys.modules:  # the quantiser turns ONNX Runtime's C++ log off process-wide
        sys.modules["onnxruntime"].set_default_logger_severity(2)  # its default: warnings and up


def _in_process(argv: list[str], *, cwd, env: dict, input) -> subprocess.CompletedProcess:
    import quantgate
    from quantgate.cli import main

    _reset_cli_state()
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_term = signal.getsignal(signal.SIGTERM)
    root = logging.getLogger()
    saved_log = root.handlers[:], root.level
    for s in saved_streams[1:]:
        with contextlib.suppress(Exception):
            s.flush()
    saved_fds = [os.dup(fd) for fd in (0, 1, 2)]
    code: int = 0
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f, tempfile.TemporaryFile() as in_f:
        if input is not None:
            in_f.write(input.encode() if isinstance(input, str) else input)
            in_f.seek(0)
            os.dup2(in_f.fileno(), 0)
        else:
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
        os.dup2(out_f.fileno(), 1)
        os.dup2(err_f.fileno(), 2)
        # the streams a fresh interpreter has on pipes: block-buffered stdout, line-buffered stderr
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "rb", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "wb", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "wb", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
        )
        try:
            os.environ.clear()
            os.environ.update(env)
            if cwd is not None:
                os.chdir(cwd)
            sys.argv = [str(Path(quantgate.__file__).with_name("__main__.py")), *argv]
            root.handlers = []  # unhandled records go to logging's last resort, standard error
            root.setLevel(logging.WARNING)
            with warnings.catch_warnings():
                warnings.resetwarnings()
                for action, category, module in reversed(_DEFAULT_WARNING_FILTERS):
                    warnings.filterwarnings(action, category=category, module=module)
                warnings.showwarning = _show_warning
                try:
                    main(args=argv)
                except SystemExit as e:
                    if e.code is None:
                        code = 0
                    elif isinstance(e.code, int):
                        code = e.code
                    else:
                        print(e.code, file=sys.stderr)
                        code = 1
                except BaseException:  # what the interpreter does with an exception nobody caught
                    traceback.print_exc()
                    code = 1
            for s in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    s.flush()
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
            sys.argv = saved_argv
            root.handlers, _ = saved_log
            root.setLevel(saved_log[1])
            signal.signal(signal.SIGTERM, saved_term)
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            for fd, saved in zip((0, 1, 2), saved_fds, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            _reset_cli_state()
        out_f.seek(0)
        err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    if not (isinstance(input, str) or input is None):
        return subprocess.CompletedProcess(["quantgate", *argv], code, stdout, stderr)
    return subprocess.CompletedProcess(["quantgate", *argv], code, _text(stdout), _text(stderr))


def _text(data: bytes) -> str:
    """What `subprocess.run(..., text=True)` makes of a stream: decoded, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


def assert_one_line_error(proc, *fragments) -> str:
    """Exit 2, exactly one line on stderr, no traceback, and the line names what it should."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def write_registry(path: Path, models: list[dict], **top) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1, **top, "models": models}, indent=2) + "\n")
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    """A throwaway repository root (a `.git` folder marks it)."""
    (tmp_path / ".git").mkdir()
    return tmp_path


def under_ci() -> bool:
    """True in CI (`CI=true`, as GitHub Actions and .ci/run's environment set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_tool(available: bool, reason: str) -> None:
    """Skip (loudly) when a tool the test needs is missing here, but FAIL under CI: .ci/run installs
    qemu-user and a Docker engine, and the [qat] extra brings torch, so a missing one there is a
    broken CI, not a reason to pass."""
    if available:
        return
    if under_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


_EXTRA = {"torch": "qat", "onnxscript": "qat", "pyarrow": "dev"}


def require_module(name: str):
    """`pytest.importorskip`, except that under CI (where scripts/test.sh installs the dev and qat
    extras) a missing module fails the test."""
    try:
        return importlib.import_module(name)
    except ImportError:
        extra = _EXTRA.get(name, "dev")
        require_tool(False, f"NO {name}: this test did NOT run (pip install -e '.[{extra}]')")
