"""`quantgate qat` and `run_qat`: wiring (--smoke), a short real run the gate passes, the Python
API, one-line config errors, and the no-torch message."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import require_module
from qat_support import (
    gate_pair,
    write_case,
)


@pytest.mark.torch
def test_short_real_run_with_the_dynamo_exporter_passes_the_gate(tmp_path):
    """`exporter: dynamo` end to end (torch.export + onnxscript): a trained, int8 file the gate passes."""
    torch = require_module("torch")
    require_module("onnxscript")
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
    torch = require_module("torch")
    require_module("onnxscript")
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
    torch = require_module("torch")
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
    assert "pip install 'onnxscript==0.7.2'" in msg and "pip install '.[qat]'" in msg


@pytest.mark.torch
def test_run_qat_from_python_is_deterministic(tmp_path):
    torch = require_module("torch")
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
def test_parquet_columns_stacked_or_list_typed(tmp_path):
    require_module("torch")
    pa = require_module("pyarrow")
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


def test_install_hints_pin_what_pyproject_pins():
    """The one-line hint for a missing optional package installs the version the qat extra pins."""
    import tomllib

    from conftest import REPO
    from quantgate.optional import EXTRAS

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for package, extra in EXTRAS.values():
        assert extra in extras
        if "==" in package:
            assert package in extras[extra], (package, extras[extra])
