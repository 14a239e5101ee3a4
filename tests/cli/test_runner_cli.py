"""conftest.run_cli runs the command in this process: it must see what a fresh process sees and
leave this one as it was."""

from __future__ import annotations

import os
import sys

import pytest

from conftest import run_cli, run_cli_process, write_registry


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["gate", "--no-such-option"],  # a usage error: exit 2, one line
        ["validate", "--registry", "missing.json"],
        ["validate", "--registry", "registry.json"],  # a registry with a problem
    ],
    ids=["version", "usage", "missing", "problem"],
)
def test_in_process_and_a_fresh_process_print_the_same(repo, args):
    write_registry(repo / "registry.json", [{"id": "a", "onnx": "gone.onnx"}])
    inside, outside = run_cli(*args, cwd=repo), run_cli_process(*args, cwd=repo)
    assert (inside.returncode, inside.stdout, inside.stderr) == (outside.returncode, outside.stdout, outside.stderr)


def test_the_environment_folder_and_streams_are_put_back(repo):
    before = (dict(os.environ), os.getcwd(), sys.stdout, sys.stderr, sys.stdin, sys.argv)
    proc = run_cli("validate", "--registry", "r.json", cwd=repo, env={"QUANTGATE_TEST_ONLY": "1"})
    assert proc.returncode == 2 and "r.json" in proc.stderr
    assert (dict(os.environ), os.getcwd(), sys.stdout, sys.stderr, sys.stdin, sys.argv) == before


def test_a_clean_environment_is_the_whole_environment(repo):
    """clean_env: variables of this process do not leak into the command (the comment command
    reads GITHUB_* variables, so a CI job's must not reach a test that leaves them out)."""
    os.environ["GITHUB_REPOSITORY"] = "leak/leak"
    try:
        proc = run_cli("comment", "--results", "none.json", cwd=repo, env={"PATH": os.environ["PATH"]}, clean_env=True)
    finally:
        del os.environ["GITHUB_REPOSITORY"]
    assert "leak/leak" not in proc.stdout + proc.stderr


def test_descriptors_warnings_and_log_records_reach_the_captured_streams(repo, monkeypatch):
    """What a fresh process would show is caught: writes to descriptors 1 and 2 below Python's
    streams (ONNX Runtime's C++ log, a child process), a warning, a log record with no handler
    (logging's last resort), and the exit code of sys.exit."""
    import logging
    import warnings

    def entry(args):
        print("printed")
        os.write(1, b"fd 1\n")
        os.write(2, b"fd 2\n")
        warnings.warn("a warning", UserWarning, stacklevel=1)
        logging.getLogger("quantgate.test").warning("a log record")
        sys.exit(3)

    monkeypatch.setattr("quantgate.cli.main", entry)
    proc = run_cli("anything", cwd=repo)
    assert proc.returncode == 3
    assert sorted(proc.stdout.splitlines()) == ["fd 1", "printed"]
    err = proc.stderr.splitlines()
    assert "fd 2" in err and "a log record" in err and any("UserWarning: a warning" in ln for ln in err), err


def test_a_missing_tool_skips_here_and_fails_under_ci(monkeypatch):
    from conftest import require_module, require_tool

    require_tool(True, "present")  # nothing happens
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="NO qemu"):
        require_tool(False, "NO qemu-x86_64")
    with pytest.raises(pytest.skip.Exception, match="no_such_module_here"):
        require_module("no_such_module_here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and NO qemu"):
        require_tool(False, "NO qemu-x86_64")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_here"):
        require_module("no_such_module_here")
    assert require_module("json").dumps([]) == "[]"
