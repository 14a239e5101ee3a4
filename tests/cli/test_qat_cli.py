"""CLI: `quantgate qat` and `run_qat`: wiring (--smoke), a short real run the gate passes, the Python
API, one-line config errors, and the no-torch message."""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest

from conftest import require_module
from qat_support import (
    _DELETE,
    cli,
    cli_inproc,
    gate_pair,
    write_case,
)


@pytest.mark.torch
def test_smoke_cli_writes_a_loadable_sidecar_and_report(tmp_path):
    require_module("torch")
    import onnxruntime as ort

    cfg = write_case(tmp_path)
    out = tmp_path / "tiny.int8.onnx"
    report = tmp_path / "report.json"
    r = cli(
        "qat",
        "--config",
        str(cfg),
        "--output",
        str(out),
        "--smoke",
        "--report-out",
        str(report),
        "--keep-fp32",
        str(tmp_path / "tiny.onnx"),
        "--keep-calibration",
        str(tmp_path / "cal.npz"),
    )
    assert r.returncode == 0, r.stderr
    assert "smoke" in r.stdout
    assert f"wrote {tmp_path / 'cal.npz'} (calibration set)" in r.stdout
    with np.load(tmp_path / "cal.npz") as cal:  # the set the PTQ was calibrated on
        assert cal["features"].shape[1:] == (4,) and cal["features"].dtype == np.float32
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"features": np.zeros((1, 4), np.float32)})[0]
    assert y.shape == (1, 1)
    rep = json.loads(report.read_text())
    assert rep["kind"] == "qat" and rep["smoke"] is True
    assert rep["phases"]["fp32"]["epochs"] == 0 and rep["phases"]["qat"]["epochs"] == 0
    assert rep["run_provenance"]["versions"]["torch"]
    assert rep["model"]["parameter_count"] > 0
    assert rep["weight_change"]["max_abs"] == 0.0  # no training: the weights are the initial ones
    # not a terminal: plain lines, no bar characters
    assert "[#" not in r.stderr


@pytest.mark.torch
def test_short_real_run_changes_weights_and_passes_the_gate(tmp_path):
    require_module("torch")
    cfg = write_case(tmp_path)
    out = tmp_path / "tiny.int8.onnx"
    report = tmp_path / "r.json"
    r = cli(
        "qat",
        "--config",
        str(cfg),
        "--output",
        str(out),
        "--keep-fp32",
        str(tmp_path / "tiny.onnx"),
        "--keep-warm-fp32",
        str(tmp_path / "warm" / "tiny.onnx"),
        "--report-out",
        str(report),
        "--epochs-qat",
        "3",
    )
    assert r.returncode == 0, r.stderr
    # one progress line per epoch of each phase
    assert r.stderr.count("qat: fp32") == 3 and r.stderr.count("qat: qat ") == 3
    rep = json.loads(report.read_text())
    assert rep["weight_change"]["max_abs"] > 0  # QAT moved the weights
    assert rep["phases"]["qat"]["epochs"] == 3
    assert rep["losses"]["fp32_val"] < rep["losses"]["fp32_train"] * 10
    row = gate_pair(tmp_path / "tiny.onnx", out)
    assert row["status"] == "pass", row["reason"]
    # the QAT sidecar judged against the warm-start fp32 model (what distillation aims at)
    (tmp_path / "warm" / "tiny.int8.onnx").write_bytes(out.read_bytes())
    row = gate_pair(tmp_path / "warm" / "tiny.onnx", tmp_path / "warm" / "tiny.int8.onnx")
    assert row["status"] == "pass", row["reason"]


@pytest.mark.torch
@pytest.mark.parametrize(
    "over, key",
    [
        ({"loss": _DELETE, "model": _DELETE}, "model: missing"),
        ({"lr": "fast"}, "lr: expected a positive number"),
        ({"batch_size": 1.5}, "batch_size: expected an integer"),
        ({"loss": "mae"}, "loss: unknown loss 'mae'"),
        ({"qat__epochs_qat": -1}, "qat.epochs_qat: expected an integer"),
        ({"qat__epoch_qat": 3}, "qat.epoch_qat: unknown key; did you mean 'epochs_qat'?"),
        ({"model__factory": "tiny_model.py:Nope"}, "model.factory: 'tiny_model.py' has no 'Nope'"),
        ({"model__factory": "no_such_pkg_xyz.mod:Net"}, "model.factory: cannot import 'no_such_pkg_xyz.mod'"),
        ({"data__target": "missing_key"}, "data.target: key 'missing_key' is not in train.npz"),
        (
            {"qat__input_shape": [1, 5]},
            "data.inputs[0]: 'x' has per-sample shape [4], but qat input 'features' is [1, 5]",
        ),
        ({"model__kwargs": {"n_features": 5}}, "data: tiny_model.py:Tiny fails on a batch of the data"),
        ({"data__path": "nothere.npz"}, "data.path: file not found"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, over, key):
    require_module("torch")
    cfg = write_case(tmp_path, **over)
    code, out, err = cli_inproc(
        capsys, "qat", "--config", str(cfg), "--output", str(tmp_path / "o.int8.onnx"), "--smoke"
    )
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert key in lines[0]
    assert not (tmp_path / "o.int8.onnx").exists()


@pytest.mark.torch
def test_wrong_target_shape_and_bad_cli_value(tmp_path, capsys):
    require_module("torch")
    cfg = write_case(tmp_path)
    x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=np.zeros((64, 3), np.float32))
    code, _, err = cli_inproc(capsys, "qat", "--config", str(cfg), "--output", str(tmp_path / "o.int8.onnx"), "--smoke")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "data.target: per-sample shape [3]" in err
    code, _, err = cli_inproc(
        capsys, "qat", "--config", str(cfg), "--output", str(tmp_path / "o.int8.onnx"), "--n-calibration", "0"
    )
    assert code == 2 and "--n-calibration" in err and len(err.strip().splitlines()) == 1


def test_without_torch_says_how_to_install(tmp_path):
    # block `import torch` in a fresh interpreter, whatever is installed
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent("""
        import sys
        class _NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("No module named 'torch' (blocked by the test)")
                return None
        sys.meta_path.insert(0, _NoTorch())
    """)
    )
    cfg = tmp_path / "qat.yaml"
    cfg.write_text("model: {factory: 'x.py:M'}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]))
    r = cli("qat", "--config", str(cfg), "--output", str(tmp_path / "o.int8.onnx"), env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install '.[qat]'" in lines[0] and "torch==2.13.0" in lines[0]


@pytest.mark.torch
def test_exporter_option_overrides_the_config(tmp_path, capsys):
    require_module("torch")
    require_module("onnxscript")
    import onnx

    cfg = write_case(tmp_path)
    out = tmp_path / "tiny.int8.onnx"
    code, _, err = cli_inproc(
        capsys, "qat", "--config", str(cfg), "--output", str(out), "--smoke", "--exporter", "dynamo", "--quiet"
    )
    assert code == 0, err
    m = onnx.load(str(out))
    assert any(n.name.startswith("node_") for n in m.graph.node)  # dynamo's node naming, not TorchScript's "/..."
    code, _, err = cli_inproc(capsys, "qat", "--config", str(cfg), "--output", str(out), "--exporter", "jit")
    assert code == 2 and "--exporter" in err and len(err.strip().splitlines()) == 1


@pytest.mark.torch
def test_a_report_over_the_config_or_its_data_is_refused_before_training(tmp_path):
    require_module("torch")
    cfg = write_case(tmp_path)
    for target, what in ((cfg, "config"), (tmp_path / "train.npz", "named like a model or data file")):
        before = target.read_bytes()
        r = cli("qat", "--config", str(cfg), "--output", str(tmp_path / "t.int8.onnx"), "--report-out", str(target))
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"--report-out {target}" in r.stderr and what in r.stderr
        assert target.read_bytes() == before and not (tmp_path / "t.int8.onnx").exists()
