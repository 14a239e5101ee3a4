"""Helpers and fixtures shared by the unit and CLI tests of action."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from quantgate.action import settings
from quantgate.results import Results, Row

REPO = Path(__file__).resolve().parents[1]


def row(id_, status, **kw):
    base = {
        "id": id_,
        "mode": "dynamic",
        "status": status,
        "reason": None,
        "budget": 0.01,
        "drop": None,
        "plcc": None,
        "registry_line": None,
    }
    base.update(kw)
    return Row(**base)


def results_of(rows) -> Results:
    return Results(models=tuple(rows), settings={}, run_provenance={})


def parse_output_file(text: str) -> dict:
    """Read $GITHUB_OUTPUT the way the runner does (name=value and name<<DELIM heredocs)."""
    out, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        ln = lines[i]
        if not ln:
            i += 1
            continue
        if "<<" in ln and ("=" not in ln or ln.index("<<") < ln.index("=")):
            name, delim = ln.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1 : j])
            i = j + 1
        else:
            name, value = ln.split("=", 1)
            out[name] = value
            i += 1
    return out


@pytest.fixture
def ws(tmp_path) -> Path:
    w = tmp_path / "ws"
    (w / "sub").mkdir(parents=True)
    (w / ".git").mkdir()
    return w


@pytest.fixture(scope="module")
def mlp_workspace(tmp_path_factory) -> Path:
    """A workspace holding the shipped MLP and its dynamic int8 sidecar (made here when the
    checkout does not ship it), with a registry of one entry."""
    from quantgate.produce.dynamic import quantize_dynamic

    w = tmp_path_factory.mktemp("action-ws")
    (w / ".git").mkdir()
    models = w / "models"
    models.mkdir()
    src = REPO / "model" / "tiny" / "mlp_regressor_v1.onnx"
    shutil.copy(src, models / src.name)
    shipped = src.with_name("mlp_regressor_v1.int8.onnx")
    if shipped.is_file():
        shutil.copy(shipped, models / shipped.name)
    else:
        quantize_dynamic(models / src.name)
    return w


def write_mlp_registry(w: Path, budget: float) -> str:
    text = json.dumps(
        {
            "schema_version": 1,
            "models": [
                {
                    "id": "mlp",
                    "onnx": "mlp_regressor_v1.onnx",
                    "quant_mode": "dynamic",
                    "quant_accuracy_budget_plcc": budget,
                    "owner": "kept and ignored",
                }
            ],
        },
        indent=2,
    )
    (w / "models" / "registry.json").write_text(text + "\n")
    return "models/registry.json"


def runner_env(w: Path, tmp_path: Path, event_name="push", **inputs) -> dict:
    fc = tmp_path / "file_commands"
    fc.mkdir(exist_ok=True)
    (fc / "out").write_text("")
    (fc / "summary").write_text("")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 3}} if event_name == "pull_request" else {}))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(w),
        "GITHUB_OUTPUT": str(fc / "out"),
        "GITHUB_STEP_SUMMARY": str(fc / "summary"),
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event),
        "PATH": "/usr/bin:/bin",
    }
    env.update({settings.input_env_name(k): v for k, v in inputs.items()})
    return env


@pytest.fixture
def keep_cwd(monkeypatch):
    monkeypatch.chdir(REPO)  # run() changes into the working directory; undo it after


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(exe).is_file():
        pytest.fail(f"{name} is not installed; it comes with `pip install -e '.[dev]'`")
    return exe


WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
