"""Helpers and fixtures shared by the unit and CLI tests of comment."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from github_server import FakeGitHub
from quantgate.github.client import GitHubClient
from quantgate.github.comment import ACTIONS_BOT
from quantgate.report.comment import marker, render_comment
from quantgate.results import Results

REPO = "octo/models"


PR = 7


TOKEN = "ghp_SECRETtokenVALUE1234567890"


APP_TOKEN = "ghs_INSTALLATIONtokenVALUE0987"


FORK_TOKEN = "ghs_FORKreadONLYtoken5555"


SHA = "a" * 40


def _mlp(path, seed: int, scale: float = 1.0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((6, 16)) * scale).astype(np.float32)
    w2 = (rng.standard_normal((16, 1)) * scale).astype(np.float32)
    g = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Results:
    """pass, fail (budget too tight), error (sidecar missing) and skipped (fp32), measured."""
    from quantgate.gate import run_gate
    from quantgate.produce.config import QuantConfig
    from quantgate.produce.dynamic import quantize_dynamic

    root = tmp_path_factory.mktemp("zoo")
    (root / ".git").mkdir()
    d = root / "model"
    d.mkdir()
    for name, seed in (("good_mlp", 1), ("tight_mlp", 2), ("lost_mlp", 3), ("float_mlp", 4)):
        _mlp(d / f"{name}.onnx", seed)
    # Settings pinned (per-channel u8 weights): the layout tests expect drops of these magnitudes,
    # whatever the producer's default becomes.
    pinned = QuantConfig(weight_type="quint8")
    quantize_dynamic(d / "good_mlp.onnx", config=pinned)
    quantize_dynamic(d / "tight_mlp.onnx", config=pinned)
    reg = d / "registry.json"
    reg.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "models": [
                    {
                        "id": "good_mlp",
                        "onnx": "good_mlp.onnx",
                        "quant_mode": "dynamic",
                        "quant_accuracy_budget_plcc": 0.05,
                    },
                    {
                        "id": "tight_mlp",
                        "onnx": "tight_mlp.onnx",
                        "quant_mode": "dynamic",
                        "quant_accuracy_budget_plcc": 1e-12,
                    },
                    {"id": "lost_mlp", "onnx": "lost_mlp.onnx", "quant_mode": "dynamic"},
                    {"id": "float_mlp", "onnx": "float_mlp.onnx", "quant_mode": "fp32"},
                ],
            }
        )
    )
    doc = run_gate(
        reg,
        root=root,
        samples=64,
        seed=0,
        argv=["quantgate", "gate", "tight_mlp", "good_mlp", "--registry", str(reg), "--json-out", "/tmp/x.json", "-q"],
    )
    assert [r.status for r in doc.models] == ["pass", "fail", "error", "skipped"]
    return doc


@pytest.fixture
def results_file(results, tmp_path):
    p = tmp_path / "results.json"
    p.write_text(json.dumps(results.to_json()))
    return p


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        server.add_token(TOKEN, "quantgate-bot", "user")
        server.add_token(APP_TOKEN, ACTIONS_BOT, "installation")
        server.add_token(FORK_TOKEN, ACTIONS_BOT, "fork")
        yield server


def client(gh, token=TOKEN, **kw):
    return GitHubClient(token=token, base_url=gh.base_url, sleep=lambda s: None, **kw)


def render_for(results):
    return lambda n: render_comment(results, max_chars=n, env={})


MARK = None


def mark(results):
    return marker(results.registry)


def _many(results, n_pass, n_fail):
    doc = results.to_json()
    good = next(r for r in doc["models"] if r["status"] == "pass")
    bad = next(r for r in doc["models"] if r["status"] == "fail")
    doc["models"] = [{**good, "id": f"pass_model_{i:05d}"} for i in range(n_pass)] + [
        {**bad, "id": f"fail_model_{i:05d}", "reason": "drop over budget " + "x" * 200} for i in range(n_fail)
    ]
    doc["counts"] = {"total": n_pass + n_fail, "pass": n_pass, "fail": n_fail, "error": 0, "skipped": 0}
    doc["verdict"] = "fail"
    return Results.from_json(doc)


def run_cli(*args, env=None, cwd=None):
    """`quantgate comment ARGS` (in this process: conftest.run_cli) without a CI job's environment."""
    from conftest import run_cli as run

    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_")) and k != "QUANTGATE_IMAGE"}
    return run("comment", *args, env={**base, **(env or {})}, clean_env=True, cwd=cwd)


def _wr_event(tmp_path, sha=SHA, event="pull_request"):
    p = tmp_path / "wr.json"
    p.write_text(
        json.dumps(
            {
                "action": "completed",
                "workflow_run": {
                    "id": 55,
                    "event": event,
                    "conclusion": "failure",
                    "head_sha": sha,
                    "head_branch": "main",
                    "head_repository": {"full_name": "forker/models"},
                    "pull_requests": [],
                },
            }
        )
    )
    return p
