"""`quantgate qat` and `run_qat`: wiring (--smoke), a short real run the gate passes, the Python
API, one-line config errors, and the no-torch message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

MODEL_PY = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, n_features=4, hidden=16):
            super().__init__()
            self.fc1 = nn.Linear(n_features, hidden)
            self.fc2 = nn.Linear(hidden, 1)

        def forward(self, features):
            return self.fc2(F.relu(self.fc1(features)))

    def batch(n, g):
        x = torch.rand(n, 4, generator=g)
        return x, (x[:, :1] * 2 + torch.sin(3 * x[:, 1:2]) + x[:, 2:3] * x[:, 3:4])
""")


def write_case(tmp: Path, **over) -> Path:
    """A tiny model file, an .npz of training pairs and a config; `over` edits the config."""
    (tmp / "tiny_model.py").write_text(MODEL_PY)
    rng = np.random.default_rng(0)
    x = rng.random((512, 4), dtype=np.float32)
    y = (x[:, :1] * 2 + np.sin(3 * x[:, 1:2]) + x[:, 2:3] * x[:, 3:4]).astype(np.float32)
    np.savez(tmp / "train.npz", x=x, y=y)
    cfg = {
        "model": {"factory": "tiny_model.py:Tiny", "kwargs": {"hidden": 16}},
        "data": {"path": "train.npz", "inputs": ["x"], "target": "y"},
        "loss": "mse",
        "lr": 0.01,
        "batch_size": 64,
        "seed": 0,
        "qat": {
            "epochs_fp32": 3,
            "epochs_qat": 2,
            "input_names": ["features"],
            "output_names": ["score"],
            "n_calibration": 32,
        },
    }
    for dotted, value in over.items():
        *path, last = dotted.split("__")
        d = cfg
        for k in path:
            d = d[k]
        if value is _DELETE:
            d.pop(last)
        else:
            d[last] = value
    import yaml

    p = tmp / "qat.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


_DELETE = object()


def cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from quantgate.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def cli_inproc(capsys, *args):
    """The CLI in this process (no interpreter + torch start-up per case): (exit code, stdout, stderr)."""
    from quantgate.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main.main(args=list(args), prog_name="quantgate")
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def gate_pair(fp32: Path, int8: Path) -> dict:
    from quantgate.gate import GateSettings, gate_entry
    from quantgate.registry import Entry

    e = Entry(index=-1, raw={}, id=fp32.stem, mode="qat", budget=0.01, onnx_path=fp32, int8_path=int8)
    return gate_entry(e, GateSettings()).to_json()


@pytest.mark.torch
def test_smoke_cli_writes_a_loadable_sidecar_and_report(tmp_path):
    pytest.importorskip("torch")
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
    )
    assert r.returncode == 0, r.stderr
    assert "smoke" in r.stdout
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
    pytest.importorskip("torch")
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
def test_short_real_run_with_the_dynamo_exporter_passes_the_gate(tmp_path):
    """`exporter: dynamo` end to end (torch.export + onnxscript): a trained, int8 file the gate passes."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    import onnx

    from quantgate.qat import run_qat

    cfg = write_case(tmp_path, qat__exporter="dynamo")
    r = run_qat(
        config=cfg,
        output=tmp_path / "tiny.int8.onnx",
        keep_fp32=tmp_path / "tiny.onnx",
        keep_warm_fp32=tmp_path / "warm" / "tiny.onnx",
        epochs_qat=3,
    )
    export = r.report["phases"]["export"]
    assert export["exporter"] == "dynamo" and export["opset"] == 18  # dynamo's default: torchlib's lowest
    assert r.weight_change["max_abs"] > 0
    m = onnx.load(tmp_path / "tiny.onnx")
    # the dynamo exporter's graph: ONNX nodes named after the ATen ops (node_linear, ...), where
    # the TorchScript exporter writes module scopes (/fc1/Gemm); opset 18; torch's full version
    assert [n.name for n in m.graph.node] == ["node_linear", "node_relu", "node_linear_1"]
    assert {(o.domain, o.version) for o in m.opset_import} == {("", 18)}
    assert m.producer_name == "pytorch" and m.producer_version == torch.__version__
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*m.graph.input, *m.graph.output)
    }
    assert dims == {"features": ["batch", 4], "score": ["batch", 1]}
    assert not {vi.name for vi in m.graph.value_info} & {i.name for i in m.graph.initializer}
    q = onnx.load(r.output)
    assert {n.op_type for n in q.graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    assert gate_pair(tmp_path / "tiny.onnx", r.output)["status"] == "pass"
    (tmp_path / "warm" / "tiny.int8.onnx").write_bytes(r.output.read_bytes())
    row = gate_pair(tmp_path / "warm" / "tiny.onnx", tmp_path / "warm" / "tiny.int8.onnx")
    assert row["status"] == "pass", row["reason"]


@pytest.mark.torch
def test_both_exporters_give_the_same_function(tmp_path):
    """The same module through both exporters: distinguishable graphs, the same outputs at any
    batch size (the dynamic axis survives torch.export's 0/1 specialisation), and an explicit
    opset below 18 converted down for dynamo."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from dataclasses import replace

    import onnx
    import onnxruntime as ort

    from quantgate.errors import UserError
    from quantgate.qat.config import DataSpec, QatSettings
    from quantgate.qat.pipeline import export_onnx

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, img, gain):
            h = torch.nn.functional.relu(self.conv(img)).mean(dim=(2, 3))
            return self.fc(h) * gain

    torch.manual_seed(0)
    net = Net().eval()
    base = QatSettings(
        factory="Net",
        data=DataSpec(),
        input_names=("img", "gain"),
        output_names=("y",),
        dynamic_axes={"img": {0: "n"}, "gain": {0: "n"}, "y": {0: "n"}},
    )
    example = (torch.zeros(1, 1, 8, 8), torch.zeros(1, 1))
    rng = np.random.default_rng(0)
    feeds = {"img": rng.random((5, 1, 8, 8), dtype=np.float32), "gain": rng.random((5, 1), dtype=np.float32)}
    with torch.no_grad():
        want = net(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    names = {}
    for exporter, opset in (("torchscript", 17), ("dynamo", 18)):
        m = onnx.load_from_string(export_onnx(net, replace(base, exporter=exporter, opset=opset), example))
        assert {(o.domain, o.version) for o in m.opset_import} == {("", opset)}
        assert [d.dim_param for d in m.graph.output[0].type.tensor_type.shape.dim] == ["n", ""]
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(sess.run(None, feeds)[0], want, rtol=1e-5, atol=1e-6)
        names[exporter] = [n.name for n in m.graph.node]
    assert all(n.startswith("/") for n in names["torchscript"])
    assert all(n.startswith("node_") for n in names["dynamo"])
    # below 18 the dynamo exporter relies on onnx's version converter, which (onnx 1.23.2,
    # onnxscript 0.7.2) cannot take this graph's ReduceMean back to 17 and keeps 18: refused
    with pytest.raises(UserError, match=r"qat\.opset: the dynamo exporter wrote opset 18, not 17"):
        export_onnx(net, replace(base, exporter="dynamo", opset=17, source="q.yaml"), example)


@pytest.mark.torch
def test_dynamo_without_onnxscript_is_one_line(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from quantgate.errors import UserError
    from quantgate.qat.config import DataSpec, QatSettings
    from quantgate.qat.pipeline import export_onnx

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` raises ImportError
    s = QatSettings(
        factory="Linear",
        data=DataSpec(),
        input_names=("x",),
        output_names=("y",),
        dynamic_axes={},
        opset=18,
        exporter="dynamo",
        source="q.yaml",
    )
    with pytest.raises(UserError) as e:
        export_onnx(torch.nn.Linear(2, 1), s, (torch.zeros(1, 2),))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("q.yaml: qat.exporter: 'dynamo' needs onnxscript")
    assert "pip install 'quantgate[qat]'" in msg


@pytest.mark.torch
def test_run_qat_from_python_is_deterministic(tmp_path):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from quantgate.qat import run_qat

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 8)
            self.b = torch.nn.Linear(8, 1)

        def forward(self, x):
            return self.b(F.relu(self.a(x)))

    rng = np.random.default_rng(1)
    x = rng.random((256, 3), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True).astype(np.float32)
    results = []
    for i in range(2):
        results.append(
            run_qat(
                Net,
                (x, y),
                tmp_path / f"run{i}" / "net.int8.onnx",
                epochs_fp32=2,
                epochs_qat=1,
                lr=0.01,
                batch_size=32,
                seed=3,
                n_calibration=16,
                keep_fp32=tmp_path / f"run{i}" / "net.onnx",
            )
        )
    a, b = results
    assert a.output.is_file() and a.fp32_path.is_file()
    assert a.parameter_count == 3 * 8 + 8 + 8 + 1
    assert set(a.seconds) >= {"fp32", "qat", "export", "ptq", "total"}
    assert a.losses == b.losses  # same inputs, same figures
    assert a.output.read_bytes() == b.output.read_bytes()
    assert a.report["run_provenance"]["versions"]["torch"] == torch.__version__


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
    pytest.importorskip("torch")
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
    pytest.importorskip("torch")
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
    assert len(lines) == 1 and "pip install 'quantgate[qat]'" in lines[0] and "torch==2.13.0" in lines[0]


@pytest.mark.torch
def test_parquet_columns_stacked_or_list_typed(tmp_path):
    pytest.importorskip("torch")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from quantgate.qat import run_qat

    write_case(tmp_path)  # the model file
    x = np.random.default_rng(0).random((128, 4), dtype=np.float32)
    pq.write_table(
        pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "vec": [list(r) for r in x], "y": x.sum(1)}),
        tmp_path / "train.parquet",
    )
    results = []
    for inputs in ([["a", "b", "c", "d"]], ["vec"]):
        cfg = write_case(tmp_path, data={"path": "train.parquet", "inputs": inputs, "target": "y"})
        results.append(run_qat(config=cfg, output=tmp_path / f"{len(results)}.int8.onnx", epochs_fp32=1, epochs_qat=1))
    assert all(r.output.is_file() for r in results)
    assert results[0].losses == results[1].losses  # the same numbers, two column layouts


@pytest.mark.torch
def test_exporter_option_overrides_the_config(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
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
