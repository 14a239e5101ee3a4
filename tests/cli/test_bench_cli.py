"""`quantgate gate --bench`: fp32 against int8 latency on real ONNX Runtime sessions, in the results,
the markdown, the comment and the annotations; and the plain warnings when int8 is slower or larger.
No wall-clock thresholds: the models are built so that one side does many times the other's work."""

import json

import numpy as np
import pytest

import modelzoo
from conftest import run_cli, write_registry
from gate_support import _validate_results
from quantgate.gate import latency
from quantgate.report.actions import annotation_lines
from quantgate.report.comment import render_comment
from quantgate.report.markdown import render_markdown
from quantgate.results import Results


def _timings_sane(row, batches):
    block = row["latency"]
    assert block["method"] == latency.METHOD and block["logical_cores"] >= 1 and block["cpu"]
    got = [(t["threads"], t["batch"]) for t in block["timings"]]
    assert got == [(th, b) for th in ("1", "default") for b in batches]
    for t in block["timings"]:
        assert t["fp32_ms"] > 0 and t["int8_ms"] > 0 and t["pairs"] >= latency.MIN_PAIRS
        lo, hi = t["ratio_ci"]
        assert 0 < lo <= t["ratio"] <= hi
    return block["timings"]


def test_bench_times_a_slower_int8_and_warns_with_the_figures(repo):
    """The int8 sidecar does ~20x the fp32 work: every configuration says slower, one warning
    names the ratio, the CPU and the choice, and it reaches every report."""
    fp32 = modelzoo.mlp(repo)
    modelzoo.slowed(modelzoo.int8_standin(fp32), repo / "mlp.int8.onnx")
    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic"}])
    out = repo / "r.json"
    proc = run_cli("gate", "--bench", "--registry", reg, "--samples", "64", "--json-out", out, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    _validate_results(doc)
    assert doc["settings"]["bench"] is True
    row = doc["models"][0]
    timings = _timings_sane(row, batches=(1,))  # x is [1, 8]: no batch axis to grow
    assert all(t["verdict"] == "slower" and t["ratio"] > 2 for t in timings)
    (warning,) = [w for w in row["warnings"] if "slower than fp32" in w]
    assert "on this CPU" in warning and "int8 kernels" in warning and "keep fp32 (quant_mode fp32)" in warning
    assert "try static PTQ" in warning  # a dynamic sidecar: static is the other way to try
    assert "slower than fp32" in proc.stdout  # the terminal line under the row

    results = Results.from_json(doc)
    md = render_markdown(results)
    assert "**Speed on this machine**" in md and "× slower" in md and "slower than fp32" in md
    comment = render_comment(results)
    assert "int8/fp32 time" in comment and "slower than fp32" in comment
    notes = [ln for ln in annotation_lines(results, "registry.json") if ln.startswith("::warning")]
    assert len(notes) == len(row["warnings"]) == 2  # slower, and larger (the busywork's weights)
    assert any("slower than fp32" in n and "line=" in n for n in notes)


def test_bench_times_batch_16_where_the_batch_axis_is_free_and_a_faster_int8_is_not_warned(repo):
    """fp32 carries the busywork this time: int8 is faster everywhere, and no warning is given.
    The model's batch axis is symbolic, so batch 16 is timed too; the gate feeds it 3 rows a
    sample, and the batches timed are still 1 and 16 rows."""
    plain = modelzoo.conv_padded(repo / "src")
    modelzoo.int8_standin(plain, repo / "conv.int8.onnx")
    fp32 = repo / "conv.onnx"
    modelzoo.slowed(plain, fp32, width=256, depth=4, last_dim=8)
    reg = write_registry(
        repo / "registry.json",
        [
            {
                "id": "c",
                "onnx": fp32.name,
                "quant_mode": "dynamic",
                "quant_inputs": {"image": {"shape": [3, 1, 8, 8]}},
            }
        ],
    )
    proc = run_cli("gate", "--bench", "--registry", reg, "--samples", "64", "--json-out", "-", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["models"][0]
    timings = _timings_sane(row, batches=(1, latency.LARGE_BATCH))
    # fp32 does several times the work: no configuration may read slower, and the one-thread ones
    # (no contention for the two cores with the other jobs on the machine) read faster
    assert not any(t["verdict"] == "slower" for t in timings), timings
    assert all(t["verdict"] == "faster" for t in timings if t["threads"] == "1"), timings
    assert not any("slower" in w or "no faster" in w for w in row["warnings"]), row["warnings"]


def test_without_bench_nothing_is_timed_but_a_larger_int8_file_is_still_said(repo):
    """Size needs no timing: a model of a few hundred bytes has an int8 form larger than itself,
    and the gate says so (deterministically) with the byte counts."""
    fp32 = modelzoo.tiny(repo)
    int8 = modelzoo.int8_standin(fp32)
    assert int8.stat().st_size > fp32.stat().st_size
    reg = write_registry(repo / "registry.json", [{"id": "t", "onnx": fp32.name, "quant_mode": "dynamic"}])
    proc = run_cli("gate", "--registry", reg, "--samples", "64", "--json-out", "-", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    row = doc["models"][0]
    assert row["latency"] is None and doc["settings"]["bench"] is False
    (warning,) = row["warnings"]
    ratio = int8.stat().st_size / fp32.stat().st_size
    assert f"{ratio:.2f}x larger than fp32" in warning
    assert f"{int8.stat().st_size:,} against {fp32.stat().st_size:,} bytes" in warning
    # without --bench the comment's time column has the measuring loop's rough figure (≈)
    body = render_comment(Results.from_json(doc))
    assert f"≈{doc['models'][0]['loop_timing']['ratio']:.2f}×" in body


def test_a_model_with_a_scalar_input_is_timed_as_gated_and_a_failing_batch_is_a_note(repo):
    """A 0-d input has no batch axis: the model is timed on the sample as the gate feeds it. A
    model whose symbolic first axis is not free (a Reshape to [1, 4]) keeps its batch-1 timing,
    and the batch it could not run becomes a note with ONNX Runtime's reason."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def save(name, nodes, inputs, inits, out_shape):
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
        g = helper.make_graph(nodes, name, inputs, [out], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        onnx.checker.check_model(m)
        onnx.save(m, str(repo / f"{name}.onnx"))
        return repo / f"{name}.onnx"

    w = numpy_helper.from_array(np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4), "W")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])
    t = helper.make_tensor_value_info("t", TensorProto.FLOAT, [])
    scalar = save(
        "scalar",
        [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Mul", ["m", "t"], ["y"])],
        [x, t],
        [w],
        ["N", 4],
    )
    shape = numpy_helper.from_array(np.array([1, 4], np.int64), "S")
    fixed = save(
        "reshaped",
        [
            helper.make_node("MatMul", ["x", "W"], ["m"]),
            helper.make_node("Reshape", ["m", "S"], ["y"]),
        ],
        [x],
        [w, shape],
        [1, 4],
    )
    for f in (scalar, fixed):
        modelzoo.int8_standin(f)
    reg = write_registry(
        repo / "registry.json",
        [
            {"id": "s", "onnx": scalar.name, "quant_mode": "dynamic"},
            {"id": "r", "onnx": fixed.name, "quant_mode": "dynamic"},
        ],
    )
    proc = run_cli("gate", "--bench", "--registry", reg, "--samples", "64", "--json-out", "-", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    s_row, r_row = json.loads(proc.stdout)["models"]
    _timings_sane(s_row, batches=(1,))
    assert s_row["latency"]["notes"] == []
    assert [(t["threads"], t["batch"]) for t in r_row["latency"]["timings"]] == [("1", 1), ("default", 1)]
    (note,) = r_row["latency"]["notes"]
    assert note.startswith("batch 16 not timed: ") and "Reshape" in note, note


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), ("", False)])
def test_the_action_input_bench_switches_timing_on(value, expected, monkeypatch, tmp_path):
    from quantgate.action.settings import Settings

    (tmp_path / "model" / "tiny").mkdir(parents=True)
    s = Settings.load({"bench": value}, {"GITHUB_WORKSPACE": str(tmp_path)})
    assert s.bench is expected


def test_the_action_input_bench_refuses_a_word_it_does_not_know(tmp_path):
    from quantgate.action.settings import Settings
    from quantgate.errors import UserError

    with pytest.raises(UserError, match="bench"):
        Settings.load({"bench": "sometimes"}, {"GITHUB_WORKSPACE": str(tmp_path)})
