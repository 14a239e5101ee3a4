"""Shared test helpers: run the real `quantgate` console script and check the error contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Fixtures shared by the unit and CLI tests of one topic live beside this file.
pytest_plugins = ["action_support", "comment_support"]


def run_cli(*args, cwd=None, env=None, check_rc=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `python -m quantgate ...` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "quantgate", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


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
