"""The model zoo builds what it promises: each model loads and runs in ONNX Runtime with the
advertised signature, and the hostile ones fail the way their docstrings say."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

try:  # works whether or not tests/ is a package
    from . import modelzoo as zoo
except ImportError:
    import modelzoo as zoo

F32, F16 = np.float32, np.float16


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(path, feeds):
    return _session(path).run(None, feeds)


rng = np.random.default_rng(0)

# builder, feeds, expected (shape, dtype) per output
CASES = {
    "mlp": (zoo.mlp, {"x": rng.random((1, 8), F32)}, [((1, 4), F32)]),
    "conv_symbolic": (zoo.conv_symbolic, {"image": rng.random((2, 1, 9, 7), F32)}, [((2, 1, 5, 3), F32)]),
    "two_inputs": (zoo.two_inputs, {"a": rng.random((1, 8), F32), "b": rng.random((1, 8), F32)}, [((1, 4), F32)]),
    "scalar_input": (
        zoo.scalar_input,
        {"x": rng.random((1, 8), F32), "gain": np.array(2.0, F32)},
        [((1, 4), F32)],
    ),
    "fp16_input": (zoo.fp16_input, {"x": rng.random((1, 8)).astype(F16)}, [((1, 4), F16)]),
    "int_input": (zoo.int_input, {"ids": np.array([[0, 3, 49, 7, 7, 12]], np.int64)}, [((1, 4), F32)]),
    "multi_output": (zoo.multi_output, {"x": rng.random((1, 8), F32)}, [((1, 4), F32), ((1, 2), F32)]),
    "constant_output": (zoo.constant_output, {"x": rng.random((1, 8), F32)}, [((1, 4), F32)]),
    "external_data": (zoo.external_data, {"x": rng.random((1, 8), F32)}, [((1, 4), F32)]),
    "stale_value_info": (zoo.stale_value_info, {"x": rng.random((1, 128), F32)}, [((1, 4), F32)]),
    "big_mlp": (zoo.big_mlp, {"x": rng.random((1, 512), F32)}, [((1, 16), F32)]),
    "tiny": (zoo.tiny, {"x": rng.random((1, 4), F32)}, [((1, 4), F32)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_runs_with_advertised_signature(tmp_path, name):
    build, feeds, expected = CASES[name]
    path = build(tmp_path)
    assert path.is_file() and path.suffix == ".onnx"
    sess = _session(path)
    assert sorted(i.name for i in sess.get_inputs()) == sorted(feeds)
    outs = sess.run(None, feeds)
    assert [(o.shape, o.dtype) for o in outs] == [(s, np.dtype(d)) for s, d in expected]
    for o in outs:
        assert np.all(np.isfinite(o.astype(np.float64)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_builders_are_deterministic(tmp_path, name):
    build = CASES[name][0]
    a, b = build(tmp_path / "a"), build(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()


def test_sizes(tmp_path):
    assert zoo.tiny(tmp_path).stat().st_size < 400
    assert 3_000_000 < zoo.big_mlp(tmp_path).stat().st_size < 6_000_000


def test_conv_symbolic_has_symbolic_dims_and_fails_at_one(tmp_path):
    path = zoo.conv_symbolic(tmp_path)
    (inp,) = _session(path).get_inputs()
    assert inp.shape == ["N", 1, "H", "W"]
    with pytest.raises(Exception):
        _run(path, {"image": np.zeros((1, 1, 1, 1), F32)})


def test_int_input_vocab(tmp_path):
    path = zoo.int_input(tmp_path)
    (inp,) = _session(path).get_inputs()
    assert inp.type == "tensor(int64)"
    with pytest.raises(Exception):  # id 50 is past the end of a 50-row embedding
        _run(path, {"ids": np.array([[0, 1, 2, 3, 4, 50]], np.int64)})


def test_constant_output_ignores_input(tmp_path):
    path = zoo.constant_output(tmp_path)
    y1 = _run(path, {"x": np.zeros((1, 8), F32)})[0]
    y2 = _run(path, {"x": np.full((1, 8), 7.0, F32)})[0]
    np.testing.assert_array_equal(y1, y2)


def test_fp16_rejects_float32_feed(tmp_path):
    with pytest.raises(Exception):
        _run(zoo.fp16_input(tmp_path), {"x": np.zeros((1, 8), F32)})


def test_external_data_lives_beside_model(tmp_path):
    path = zoo.external_data(tmp_path)
    data = tmp_path / "external_data.onnx.data"
    assert data.is_file() and data.stat().st_size > 0
    assert path.stat().st_size < data.stat().st_size + 1000
    locations = {
        e.value
        for t in onnx.load(path, load_external_data=False).graph.initializer
        for e in t.external_data
        if e.key == "location"
    }
    assert locations == {data.name}
    # building again does not grow the data file (onnx appends to an existing one)
    size = data.stat().st_size
    zoo.external_data(tmp_path)
    assert data.stat().st_size == size
    # without its data file the model does not load
    data.unlink()
    with pytest.raises(Exception):
        _session(path)


def test_corrupt_is_not_a_model(tmp_path):
    path = zoo.corrupt(tmp_path)
    with pytest.raises(Exception):
        onnx.load(path)
    with pytest.raises(Exception):
        _session(path)


def test_write_npz_round_trip(tmp_path):
    x = np.arange(12, dtype=F32).reshape(3, 4)
    path = zoo.write_npz(tmp_path / "sub" / "cal.npz", x=x, ids=np.array([1, 2], np.int64))
    with np.load(path) as z:
        assert sorted(z.files) == ["ids", "x"]
        np.testing.assert_array_equal(z["x"], x)
        assert z["x"].dtype == F32 and z["ids"].dtype == np.int64


class _OneBatch:
    """A minimal CalibrationDataReader (duck-typed: get_next returning feeds, then None)."""

    def __init__(self, feeds):
        self._it = iter([feeds])

    def get_next(self):
        return next(self._it, None)


def test_stale_value_info_breaks_unprocessed_quantisation(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, quantize_dynamic, quantize_static

    class Reader(_OneBatch, CalibrationDataReader):
        pass

    src = zoo.stale_value_info(tmp_path)
    with pytest.raises(Exception, match=zoo.STALE_ERROR):
        quantize_dynamic(str(src), str(tmp_path / "dyn.int8.onnx"))
    with pytest.raises(Exception, match=zoo.STALE_ERROR):
        quantize_static(
            str(src), str(tmp_path / "st.int8.onnx"), Reader({"x": np.random.default_rng(1).random((1, 128), F32)})
        )


def test_stale_value_info_quantises_after_preprocessing(tmp_path):
    """The documented fix works, so the failure above is the stale value_info and nothing else."""
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = zoo.stale_value_info(tmp_path)
    pre = tmp_path / "pre.onnx"
    quant_pre_process(str(src), str(pre))
    out = tmp_path / "pre.int8.onnx"
    quantize_dynamic(str(pre), str(out))
    x = np.random.default_rng(2).random((1, 128), F32)
    assert _run(out, {"x": x})[0].shape == (1, 4)
