"""`quantgate calibrate build|check` on parquet caches, arrays and images made here; the round trip
into `ptq-static` and a passing gate; determinism; every bad input is one line, exit 2, no .npz."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from conftest import assert_one_line_error, run_cli
from quantgate.jsonedit import set_field
from quantgate.npz import read_npz
from quantgate.paths import sha256_file

# -- models, made with onnx.helper -------------------------------------------------------------


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _w(name, shape, seed, scale=0.5):
    return numpy_helper.from_array(
        (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32), name
    )


def mlp(d, features=6):
    """features [batch, F] -> score [batch, 1]."""
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["score"]),
    ]
    g = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        [_w("w1", (features, 16), 1), _w("b1", (16,), 2, 0.1), _w("w2", (16, 1), 3)],
    )
    return _save(g, d / "mlp.onnx")


def two_input(d):
    """ref [batch, 2, 4] and dist [batch, 2, 4] -> score [batch, 2, 3]."""
    nodes = [helper.make_node("Sub", ["ref", "dist"], ["diff"]), helper.make_node("MatMul", ["diff", "w"], ["score"])]
    sig = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 2, 4]) for n in ("ref", "dist")]
    g = helper.make_graph(
        nodes,
        "two",
        sig,
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 2, 3])],
        [_w("w", (4, 3), 4)],
    )
    return _save(g, d / "two.onnx")


def conv(d, channels=3, size=("height", "width")):
    """image [batch, C, H, W] -> out [batch, 2, H, W]."""
    nodes = [
        helper.make_node("Conv", ["image", "k"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["out"]),
    ]
    g = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, *size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2, *size])],
        [_w("k", (2, channels, 3, 3), 5)],
    )
    return _save(g, d / "conv.onnx")


# -- sources ------------------------------------------------------------------------------------


def scalar_cache(path, rows=100, seed=1, extra=True):
    x = np.random.default_rng(seed).random((rows, 6))
    cols = {f"f{i}": x[:, i] for i in range(6)}
    if extra:
        cols["label"] = np.arange(rows, dtype=np.float64)
    pq.write_table(pa.table(cols), path)
    return x


def array_cache(path, rows=40):
    rng = np.random.default_rng(2)
    ref = rng.random((rows, 2, 4)).astype(np.float32)
    dist = rng.random((rows, 8)).astype(np.float32)  # flat cells, reshaped to [2, 4]
    pq.write_table(
        pa.table(
            {
                "ref_px": pa.array(ref.tolist(), type=pa.list_(pa.list_(pa.float32()))),
                "dist_px": pa.array(dist.tolist(), type=pa.list_(pa.float32(), 8)),
                "id": pa.array([f"clip{i}" for i in range(rows)]),
            }
        ),
        path,
    )
    return ref, dist


def solid_png(path, rgb, size=(10, 6)):
    Image.new("RGB", size, rgb).save(path)
    return path


def build(repo, *args):
    return run_cli("calibrate", "build", *args, cwd=repo)


def no_npz(d):
    return sorted(p.name for p in d.rglob("*.npz*"))


# -- parquet -----------------------------------------------------------------------------------


def test_parquet_scalar_columns_sampled_and_reported(repo):
    model = mlp(repo)
    x = scalar_cache(repo / "feat.parquet")
    proc = build(
        repo,
        model,
        "--from",
        "feat.parquet",
        "--output",
        "cal/set.npz",
        "--columns",
        "f5,f4",
        "--columns",
        "f3,f2,f1,f0",
        "--n",
        "10",
        "--seed",
        "3",
        "--report-out",
        "cal/report.json",
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote cal/set.npz: 10 sample(s)" in proc.stdout
    arrays = read_npz(repo / "cal" / "set.npz")
    assert list(arrays) == ["features"] and arrays["features"].dtype == np.float32
    rep = json.loads((repo / "cal" / "report.json").read_text())
    rows = rep["sampling"]["rows"]
    assert rows == sorted(rows) and len(set(rows)) == 10
    # --columns picks and orders: f5 first
    np.testing.assert_array_equal(arrays["features"], x[rows][:, ::-1].astype(np.float32))
    assert rep["source"]["kind"] == "parquet" and rep["source"]["sha256"] == sha256_file(repo / "feat.parquet")
    assert rep["source"]["mapping"] == {"features": ["f5", "f4", "f3", "f2", "f1", "f0"]}
    st = rep["inputs"][0]
    assert st["shape"] == [10, 6] and st["dtype"] == "float32"
    assert st["min"] == pytest.approx(float(arrays["features"].min()))
    assert st["std"] == pytest.approx(float(arrays["features"].astype(np.float64).std()))
    assert rep["skipped"]["count"] == 0
    assert rep["run_provenance"]["inputs"]["source"]["sha256"] == rep["source"]["sha256"]
    assert rep["calibration_set"]["sha256"] == sha256_file(repo / "cal" / "set.npz")
    chk = run_cli("calibrate", "check", model, "cal/set.npz", cwd=repo)
    assert chk.returncode == 0 and "ok — 10 sample(s)" in chk.stdout, chk.stderr


def test_parquet_array_columns_feed_two_inputs_by_map(repo):
    model = two_input(repo)
    ref, dist = array_cache(repo / "px.parquet")
    proc = build(
        repo,
        model,
        "--from",
        "px.parquet",
        "--output",
        "two.npz",
        "--all",
        "--map",
        "ref_px=ref",
        "--map",
        "dist_px=dist",
        "--report-out",
        "r.json",
    )
    assert proc.returncode == 0, proc.stderr
    arrays = read_npz(repo / "two.npz")
    np.testing.assert_array_equal(arrays["ref"], ref)
    np.testing.assert_array_equal(arrays["dist"], dist.reshape(-1, 2, 4))
    rep = json.loads((repo / "r.json").read_text())
    assert rep["sampling"]["all"] is True and rep["calibration_set"]["samples"] == 40


def test_parquet_columns_named_after_inputs_map_themselves(repo):
    model = two_input(repo)
    rng = np.random.default_rng(0)
    pq.write_table(
        pa.table({n: pa.array(rng.random((5, 8)).tolist()) for n in ("dist", "ref")}), repo / "named.parquet"
    )
    proc = build(repo, model, "--from", "named.parquet", "--output", "s.npz", "--n", "5")
    assert proc.returncode == 0, proc.stderr
    assert read_npz(repo / "s.npz")["ref"].shape == (5, 2, 4)


def test_nonfinite_and_null_rows_dropped_on_request_and_reported(repo):
    model = mlp(repo)
    x = np.random.default_rng(0).random((30, 6))
    x[3, 1] = np.nan
    x[7, 2] = np.inf
    cols = {f"f{i}": pa.array(x[:, i]) for i in range(6)}
    f5 = x[:, 5].tolist()
    f5[11] = None
    cols["f5"] = pa.array(f5, type=pa.float64())
    pq.write_table(pa.table(cols), repo / "dirty.parquet")
    refused = build(repo, model, "--from", "dirty.parquet", "--output", "s.npz", "--n", "8")
    assert_one_line_error(refused, "dirty.parquet", "column 'f5'", "null", "row 11", "--drop-nonfinite")
    assert no_npz(repo) == []
    proc = build(
        repo,
        model,
        "--from",
        "dirty.parquet",
        "--output",
        "s.npz",
        "--all",
        "--drop-nonfinite",
        "--report-out",
        "r.json",
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped 3 row(s)" in proc.stdout
    rep = json.loads((repo / "r.json").read_text())
    assert rep["skipped"]["rows"] == [3, 7, 11]
    assert rep["skipped"]["by_reason"] == {"null": 1, "nan": 1, "inf": 1}
    assert rep["skipped"]["where"] == {"column 'f5'": {"null": 1}, "column 'f1'": {"nan": 1}, "column 'f2'": {"inf": 1}}
    assert read_npz(repo / "s.npz")["features"].shape == (27, 6)


# -- arrays ------------------------------------------------------------------------------------


def test_npy_and_npz_sources(repo):
    model = mlp(repo)
    x = np.random.default_rng(5).random((20, 6))  # float64: cast to the input's float32
    np.save(repo / "x.npy", x)
    assert build(repo, model, "--from", "x.npy", "--output", "a.npz", "--all").returncode == 0
    np.testing.assert_array_equal(read_npz(repo / "a.npz")["features"], x.astype(np.float32))
    np.savez(repo / "src.npz", feats=x, label=np.arange(20))
    proc = build(
        repo,
        model,
        "--from",
        "src.npz",
        "--output",
        "b.npz",
        "--n",
        "4",
        "--map",
        "feats=features",
        "--report-out",
        "r.json",
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((repo / "r.json").read_text())
    assert rep["source"]["ignored_keys"] == ["label"]
    np.testing.assert_array_equal(read_npz(repo / "b.npz")["features"], x[rep["sampling"]["rows"]].astype(np.float32))


# -- images ------------------------------------------------------------------------------------


def test_image_folder_to_nchw_with_range_and_normalisation(repo):
    model = conv(repo, 3, (4, 4))
    imgs = repo / "imgs"
    imgs.mkdir()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (51, 102, 204)]
    for i, c in enumerate(colours):
        solid_png(imgs / f"im{i}.png", c)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(imgs / "z.jpg", quality=100)
    (imgs / "notes.txt").write_text("not an image")
    proc = build(repo, model, "--from", "imgs", "--output", "img.npz", "--all", "--report-out", "r.json")
    assert proc.returncode == 0, proc.stderr
    a = read_npz(repo / "img.npz")["image"]
    assert a.shape == (5, 3, 4, 4) and a.dtype == np.float32
    for i, c in enumerate(colours):  # solid colours survive a resize exactly
        np.testing.assert_allclose(
            a[i], np.broadcast_to(np.array(c, np.float32)[:, None, None] / 255, (3, 4, 4)), atol=1e-6
        )
    rep = json.loads((repo / "r.json").read_text())
    assert rep["source"]["files"] == 5 and rep["source"]["other_files_ignored"] == 1
    assert rep["sampling"]["files"] == ["im0.png", "im1.png", "im2.png", "im3.png", "z.jpg"]
    # a folder is no one file: the provenance names it by the source's digest
    assert rep["run_provenance"]["inputs"]["source"] == {"path": "imgs", "sha256": rep["source"]["sha256"]}
    # mean/std apply per channel in --range units
    proc = build(
        repo,
        model,
        "--from",
        "imgs",
        "--output",
        "norm.npz",
        "--all",
        "--range",
        "0-255",
        "--mean",
        "51,102,204",
        "--std",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(read_npz(repo / "norm.npz")["image"][3], 0.0, atol=1e-6)
    # a folder digest changes when a file's bytes change
    solid_png(imgs / "im0.png", (254, 0, 0))
    build(repo, model, "--from", "imgs", "--output", "img2.npz", "--all", "--report-out", "r2.json")
    assert json.loads((repo / "r2.json").read_text())["source"]["sha256"] != rep["source"]["sha256"]


def test_image_crop_and_resize_crop_take_the_centre(repo):
    model = conv(repo, 1)  # grey, H and W symbolic: --size says
    imgs = repo / "imgs"
    imgs.mkdir()
    grad = np.tile(np.arange(12, dtype=np.uint8) * 20, (6, 1))  # 12 wide, 6 high, value = 20 * x
    Image.fromarray(grad, "L").save(imgs / "g.png")
    proc = build(
        repo,
        model,
        "--from",
        "imgs",
        "--output",
        "c.npz",
        "--all",
        "--size",
        "4x4",
        "--fit",
        "crop",
        "--range",
        "0-255",
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(read_npz(repo / "c.npz")["image"][0, 0], np.tile([80, 100, 120, 140], (4, 1)))
    proc = build(repo, model, "--from", "imgs", "--output", "rc.npz", "--all", "--size", "3", "--fit", "resize-crop")
    assert proc.returncode == 0, proc.stderr
    assert read_npz(repo / "rc.npz")["image"].shape == (1, 1, 3, 3)
    small = build(repo, model, "--from", "imgs", "--output", "x.npz", "--all", "--size", "8x8", "--fit", "crop")
    assert_one_line_error(small, "g.png", "smaller than the 8x8 crop")
    open_dims = build(repo, model, "--from", "imgs", "--output", "x.npz", "--all")
    assert_one_line_error(open_dims, "--size")
    assert no_npz(repo) == ["c.npz", "rc.npz"]


# -- round trip, determinism, registry ---------------------------------------------------------

REGISTRY_TEXT = """{
    "schema_version": 1,
    "owner": {"team": "video", "tags": ["a", "b"]},
    "models": [
        {
            "id": "other",
            "onnx": "models/other.onnx",
            "quant_mode": "fp32"
        },
        {
            "id": "mlp",
            "onnx": "models/mlp.onnx",
            "kind": "regressor",
            "quant_mode": "static",
            "quant_accuracy_budget_plcc": 0.01,
            "notes": "unknown fields stay"
        }
    ]
}
"""


def test_round_trip_build_ptq_static_gate_passes_and_registry_edited_minimally(repo):
    (repo / "models").mkdir()
    model = mlp(repo / "models")
    scalar_cache(repo / "feat.parquet", rows=200)
    reg = repo / "registry.json"
    reg.write_text(REGISTRY_TEXT)
    proc = build(
        repo,
        model,
        "--from",
        "feat.parquet",
        "--output",
        "models/cal/mlp.npz",
        "--columns",
        "f0,f1,f2,f3,f4,f5",
        "--n",
        "128",
        "--registry",
        reg,
        "--registry-id",
        "mlp",
    )
    assert proc.returncode == 0, proc.stderr
    expected = REGISTRY_TEXT.replace(
        '"quant_mode": "static",\n',
        '"quant_mode": "static",\n            "quant_calibration_set": "models/cal/mlp.npz",\n',
    )
    assert reg.read_text() == expected
    again = build(
        repo,
        model,
        "--from",
        "feat.parquet",
        "--output",
        "models/cal/mlp.npz",
        "--columns",
        "f0,f1,f2,f3,f4,f5",
        "--n",
        "128",
        "--registry",
        reg,
        "--registry-id",
        "mlp",
    )
    assert again.returncode == 0 and "already had" in again.stdout and reg.read_text() == expected
    assert run_cli("validate", "--registry", reg, cwd=repo).returncode == 2  # the sidecar is not made yet
    ptq = run_cli("ptq-static", model, "--calibration", "models/cal/mlp.npz", cwd=repo)
    assert ptq.returncode == 0, ptq.stderr
    gate = run_cli("gate", "mlp", "--registry", reg, "--json-out", "res.json", cwd=repo)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    row = json.loads((repo / "res.json").read_text())["models"][0]
    assert row["id"] == "mlp" and row["status"] == "pass" and row["drop"] <= 0.01


def test_same_seed_same_bytes_other_seed_other_rows(repo):
    model = mlp(repo)
    scalar_cache(repo / "feat.parquet", extra=False)
    imgs = repo / "imgs"
    imgs.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
    cmodel = conv(repo, 3, (5, 5))
    digests = []
    for out, seed in (("a.npz", "7"), ("b.npz", "7"), ("c.npz", "8")):
        assert (
            build(repo, model, "--from", "feat.parquet", "--output", out, "--n", "16", "--seed", seed).returncode == 0
        )
        digests.append(sha256_file(repo / out))
    assert digests[0] == digests[1] != digests[2]
    for out in ("i1.npz", "i2.npz"):
        assert build(repo, cmodel, "--from", "imgs", "--output", out, "--n", "4").returncode == 0
    assert (repo / "i1.npz").read_bytes() == (repo / "i2.npz").read_bytes()


def test_set_field_keeps_crlf_and_inline_rows():
    crlf = '{\r\n  "models": [\r\n    {\r\n      "id": "a",\r\n      "onnx": "a.onnx"\r\n    }\r\n  ]\r\n}\r\n'
    assert set_field(crlf, 0, "quant_calibration_set", "c/a.npz") == crlf.replace(
        '"onnx": "a.onnx"', '"onnx": "a.onnx",\r\n      "quant_calibration_set": "c/a.npz"'
    )
    inline = (
        '{"models": [{"id": "a", "onnx": "a.onnx", "quant_calibration_set": "old.npz"}, {"id":"b","onnx":"b.onnx"}]}'
    )
    assert set_field(inline, 0, "quant_calibration_set", "new.npz") == inline.replace("old.npz", "new.npz")
    assert set_field(inline, 1, "quant_calibration_set", "b.npz") == inline.replace(
        '"onnx":"b.onnx"', '"onnx":"b.onnx", "quant_calibration_set":"b.npz"'
    )


# -- bad input: one line, exit 2, no .npz --------------------------------------------------------


def test_bad_parquet_inputs(repo):
    model = mlp(repo)
    scalar_cache(repo / "feat.parquet")
    cases = [
        (["--columns", "f0,f1,nope,f3,f4,f5"], ["feat.parquet", "'nope'", "columns:"]),
        (["--columns", "f0,f1,f2,f3,f4"], ["gives 5 values", "takes 6", "--columns"]),
        ([], ["gives 7 values", "--columns"]),  # all scalar columns, label included
        (["--columns", "f0,f1,f2,f3,f4,f5", "--n", "101"], ["has 100 usable row(s)", "--n asks for 101", "--all"]),
        (["--columns", "f0,f1,f2,f3,f4,f5", "--all", "--n", "5"], ["--all"]),
        (["--map", "f0=nope"], ["'nope' is not an input"]),
        (["--columns", "f0", "--map", "f1=features"], ["exclude each other"]),
    ]
    for extra, fragments in cases:
        proc = build(repo, model, "--from", "feat.parquet", "--output", "s.npz", *extra)
        assert_one_line_error(proc, *fragments)
    ragged = pa.table({"features": pa.array([[0.1] * 6, [0.2] * 6, [0.3] * 5])})
    pq.write_table(ragged, repo / "ragged.parquet")
    assert_one_line_error(
        build(repo, model, "--from", "ragged.parquet", "--output", "s.npz", "--all"),
        "row 2 has 5 values",
        "same width",
    )
    pq.write_table(pa.table({"features": pa.array(["a", "b"])}), repo / "text.parquet")
    assert_one_line_error(
        build(repo, model, "--from", "text.parquet", "--output", "s.npz", "--all"),
        "column 'features'",
        "numbers",
    )
    (repo / "fake.parquet").write_text("id,f0\n1,0.5\n")
    assert_one_line_error(
        build(repo, model, "--from", "fake.parquet", "--output", "s.npz"), "fake.parquet: not a parquet file"
    )
    pq.write_table(pa.table({"features": pa.array([], type=pa.list_(pa.float32()))}), repo / "empty.parquet")
    assert_one_line_error(build(repo, model, "--from", "empty.parquet", "--output", "s.npz", "--all"), "no rows")
    assert_one_line_error(
        build(repo, model, "--from", "feat.parquet", "--output", "s.npz", "--columns", "f0,f1,f2,f3,f4,f5", "--n", "0"),
        "--n 0: a calibration set needs at least one sample; give --n 1 or more",
    )
    assert no_npz(repo) == []


def test_bad_array_image_and_output_inputs(repo):
    model = mlp(repo)
    np.save(repo / "wide.npy", np.zeros((10, 7), np.float32))
    x = np.random.default_rng(0).random((10, 6)).astype(np.float32)
    x[4, 0] = np.inf
    np.savez(repo / "inf.npz", features=x)
    np.savez(repo / "wrongkey.npz", feats=x)
    np.save(repo / "ok.npy", np.zeros((10, 6), np.float32))
    (repo / "imgs").mkdir()
    solid_png(repo / "imgs" / "a.png", (1, 2, 3))
    (repo / "imgs" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    cmodel = conv(repo, 3, (4, 4))
    cases = [
        (model, ["--from", "wide.npy", "--all"], ["array 'features'", "gives 7 values", "takes 6"]),
        (model, ["--from", "inf.npz", "--all"], ["array 'features'", "infinite", "row 4", "--drop-nonfinite"]),
        (model, ["--from", "wrongkey.npz", "--all"], ["no array for input(s) features", "--map"]),
        (model, ["--from", "missing.parquet"], ["source not found"]),
        (model, ["--from", "imgs", "--all"], ["not an NCHW image input"]),
        (cmodel, ["--from", "imgs", "--all"], ["b.png: not a decodable image"]),
        (cmodel, ["--from", "imgs", "--all", "--channels", "1"], ["--channels 1", "takes 3 channels"]),
        (cmodel, ["--from", "imgs", "--all", "--mean", "0.5,0.5"], ["--mean", "1 value or 3"]),
        (
            model,
            ["--from", "ok.npy", "--all", "--registry-id", "nope", "--registry", "reg.json"],
            ["reg.json", "not found"],
        ),
        (
            model,
            ["--from", "ok.npy", "--all", "--registry", "reg.json"],
            ["--registry: names the registry that --registry-id edits", "; add --registry-id ID"],
        ),
    ]
    for m, extra, fragments in cases:
        assert_one_line_error(build(repo, m, "--output", "s.npz", *extra), *fragments)
    assert_one_line_error(build(repo, model, "--from", "ok.npy", "--output", "s.txt", "--all"), ".npz file")
    assert_one_line_error(build(repo, "nope.onnx", "--from", "ok.npy", "--output", "s.npz"), "nope.onnx")
    (repo / "reg.json").write_text(json.dumps({"models": [{"id": "m", "onnx": "mlp.onnx"}]}))
    assert_one_line_error(
        build(
            repo,
            model,
            "--from",
            "ok.npy",
            "--output",
            "s.npz",
            "--all",
            "--registry",
            "reg.json",
            "--registry-id",
            "other",
        ),
        "no model with id 'other'",
    )
    assert no_npz(repo) == ["inf.npz", "wrongkey.npz"]  # the sources, nothing written


def test_check_refuses_bad_sets(repo):
    model = mlp(repo)
    np.savez(repo / "k.npz", x=np.zeros((4, 6), np.float32))
    assert_one_line_error(run_cli("calibrate", "check", model, "k.npz", cwd=repo), "missing 'features'")
    np.savez(repo / "d.npz", features=np.zeros((4, 6), np.float64))
    assert_one_line_error(run_cli("calibrate", "check", model, "d.npz", cwd=repo), "float64")
    np.savez(repo / "few.npz", features=np.zeros((4, 6), np.float32))
    assert_one_line_error(
        run_cli("calibrate", "check", model, "few.npz", "--min-samples", "8", cwd=repo),
        "holds 4 sample(s)",
        "--min-samples 8",
    )


@pytest.mark.parametrize(
    "module,source,fragment",
    [
        ("pyarrow", "feat.parquet", "needs the optional package 'pyarrow'"),
        ("PIL", "imgs", "needs the optional package 'Pillow'"),
    ],
)
def test_missing_extra_is_a_one_line_hint(repo, module, source, fragment):
    shadow = repo / "shadow" / module
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated: not installed')\n")
    model = mlp(repo) if module == "pyarrow" else conv(repo, 3, (4, 4))
    scalar_cache(repo / "feat.parquet")
    (repo / "imgs").mkdir()
    solid_png(repo / "imgs" / "a.png", (1, 2, 3))
    proc = run_cli(
        "calibrate",
        "build",
        model,
        "--from",
        source,
        "--output",
        "s.npz",
        "--all",
        cwd=repo,
        env={"PYTHONPATH": str(repo / "shadow")},
    )
    assert_one_line_error(proc, fragment, "pip install '.[calibrate]'")
    assert no_npz(repo) == []


def test_an_image_or_a_parquet_cache_over_its_limit_is_one_line_before_it_is_decoded(repo):
    """The pixel bound is read from the image's header and the parquet bound from the file's
    metadata, so neither needs the memory it guards; each names the variable that raises it."""
    model = conv(repo, 3, (4, 4))
    imgs = repo / "imgs"
    imgs.mkdir()
    Image.new("RGB", (16, 8), (10, 20, 30)).save(imgs / "wide.png")
    args = ("calibrate", "build", model, "--from", "imgs", "--output", "img.npz", "--all")
    env = {"QUANTGATE_MAX_IMAGE_PIXELS": "127"}
    line = assert_one_line_error(run_cli(*args, cwd=repo, env=env), "wide.png", "16x8 (WxH), 128 pixels")
    assert "over the limit of 127 pixels" in line and "QUANTGATE_MAX_IMAGE_PIXELS" in line
    assert not (repo / "img.npz").exists()
    assert run_cli(*args, cwd=repo, env={"QUANTGATE_MAX_IMAGE_PIXELS": "128"}).returncode == 0

    scalar_cache(repo / "feat.parquet", rows=1000)  # 1,000 float64 rows per column: over 8,000 bytes each
    args = ("calibrate", "build", mlp(repo), "--from", "feat.parquet", "--output", "s.npz", "--n", "4")
    args += ("--columns", "f0,f1,f2,f3,f4,f5")
    env = {"QUANTGATE_MAX_ARRAY_BYTES": "20000"}
    line = assert_one_line_error(run_cli(*args, cwd=repo, env=env), "feat.parquet", "bytes uncompressed")
    assert "over the limit of 20,000 bytes" in line and "QUANTGATE_MAX_ARRAY_BYTES" in line
    assert not (repo / "s.npz").exists()
    assert run_cli(*args, cwd=repo).returncode == 0
