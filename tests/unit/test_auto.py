"""`quantgate auto`, `explain` and coverage on real models in real ONNX Runtime sessions: the
dynamic trap on a conv net, a layer only float can save, a model only QAT brings inside its
budget, and the registry row edited in place."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import modelzoo
from conftest import require_module
from quantgate import coverage
from quantgate.auto import run_auto
from quantgate.errors import UserError
from quantgate.explain import explain_entry
from quantgate.gate.entry import gate_entry
from quantgate.gate.run import run_gate
from quantgate.gate.settings import GateSettings
from quantgate.produce.config import preset
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.produce.static import quantize_static
from quantgate.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "model" / "tiny"
# nr_metric_v1's weights as model/tiny/examples.py builds it (NrMetric, channels=16): three 3x3
# convs (1->16, 16->16, 16->16), then Gemm 16->16 and 16->1.
NR_CONV_WEIGHTS = 16 * 1 * 9 + 16 * 16 * 9 + 16 * 16 * 9
NR_GEMM_WEIGHTS = 16 * 16 + 16


def _repo(tmp_path: Path, entry: dict, model: Path) -> Path:
    """A git-less repository (root = tmp_path) with `model` copied under m/ and a registry of one
    entry, written with the layout a user's registry might have (an unknown field, 4-space indent)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "m").mkdir()
    shutil.copy(model, tmp_path / "m" / model.name)
    doc = {"schema_version": 1, "models": [{"id": entry.pop("id"), "onnx": model.name, **entry, "owner": "video team"}]}
    reg = tmp_path / "m" / "registry.json"
    reg.write_text(json.dumps(doc, indent=4) + "\n")
    return reg


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def conv_dynamic(tmp_path):
    """nr_metric_v1 shipped as a dynamic sidecar: its one Gemm pair quantised, every Conv in float."""
    reg = _repo(
        tmp_path, {"id": "nr", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.01}, TINY / "nr_metric_v1.onnx"
    )
    quantize_dynamic(tmp_path / "m" / "nr_metric_v1.onnx")
    return reg


def test_coverage_counts_the_weights_a_dynamic_conv_sidecar_leaves_in_float(conv_dynamic):
    m = conv_dynamic.parent
    c = coverage.measure(onnx.load(m / "nr_metric_v1.onnx"), onnx.load(m / "nr_metric_v1.int8.onnx"))
    assert (c.weight_nodes, c.int8_nodes) == (5, 2)
    assert c.weight_params == NR_CONV_WEIGHTS + NR_GEMM_WEIGHTS
    assert c.int8_params == NR_GEMM_WEIGHTS
    assert c.float_ops == {"Conv": 3}
    assert c.int8_share == pytest.approx(NR_GEMM_WEIGHTS / (NR_CONV_WEIGHTS + NR_GEMM_WEIGHTS), abs=1e-6)


def test_the_gate_flags_int8_in_name_only_and_names_the_fix(conv_dynamic):
    reg = load_registry(conv_dynamic)
    row = gate_entry(reg.get("nr"), GateSettings(samples=64), reg.root, reg.path)
    assert row.status == "pass"  # the drop alone would let it through: that is the trap
    said = [w for w in row.warnings if "int8 in name only" in w]
    assert len(said) == 1 and "3 Conv" in said[0] and "quantgate auto nr" in said[0]
    assert row.coverage is not None and row.coverage.int8_share < coverage.MIN_SHARE


def test_explain_reads_int8_activations_after_their_quantize_dequantize_pair():
    """In a QDQ graph a Relu folded into the u8 range clips only at the Q/DQ pair: read before
    it, every conv output would look off by its negative half (SQNR near 2 dB)."""
    ex = explain_entry("nr_metric_v1", TINY / "registry.json", top=None)
    convs = [n for n in ex.nodes if n.op_type == "Conv"]
    assert len(convs) == 3 and all(n.sqnr_db is not None and n.sqnr_db > 25.0 for n in convs)


def test_dynamic_keeps_a_gemm_in_float_through_the_quantisers_gemm_rewrite(tmp_path, monkeypatch):
    """ONNX Runtime's dynamic PTQ rewrites a Gemm into `<name>_MatMul` + `<name>_Add`: the name
    handed to it must follow, and a node quantised anyway must be refused, never shipped."""
    from quantgate import coverage as cov_mod
    from quantgate.produce import dynamic

    cfg = preset("default", "dynamic").with_options(nodes_to_exclude=("/fc2/Gemm",))
    r = quantize_dynamic(TINY / "outlier_mlp_v1.onnx", tmp_path / "a.int8.onnx", config=cfg)
    assert r.coverage.float_nodes == ("/fc2/Gemm",) and r.coverage.float_ops == {"MatMul": 1}
    monkeypatch.setattr(dynamic, "quantiser_names", lambda keys: list(keys))  # as if the rename were unknown
    with pytest.raises(UserError, match="quantised anyway"):
        quantize_dynamic(TINY / "outlier_mlp_v1.onnx", tmp_path / "b.int8.onnx", config=cfg)
    assert not (tmp_path / "b.int8.onnx").exists()
    assert cov_mod.quantiser_names(("g",)) == ["g", "g_MatMul"]


def test_a_coverage_budget_fails_the_row(conv_dynamic):
    text = conv_dynamic.read_text().replace(
        '"quant_mode": "dynamic",', '"quant_mode": "dynamic", "quant_min_int8_weight_share": 0.5,'
    )
    conv_dynamic.write_text(text)
    reg = load_registry(conv_dynamic)
    row = gate_entry(reg.get("nr"), GateSettings(samples=64), reg.root, reg.path)
    assert row.status == "fail" and "under quant_min_int8_weight_share 0.5" in row.reason


def test_auto_replaces_the_dynamic_trap_with_a_smaller_static_sidecar_that_passes(conv_dynamic):
    before = conv_dynamic.read_text()
    dynamic_bytes = (conv_dynamic.parent / "nr_metric_v1.int8.onnx").stat().st_size
    report = run_auto(conv_dynamic, ["nr"])
    o = report.outcomes[0]
    assert [(t.candidate.name, t.status) for t in o.tried] == [
        ("current", "name-only"),  # its small drop does not make it eligible
        ("dynamic", "name-only"),  # quantgate's own dynamic PTQ: the same file, judged once
        ("static", "pass"),
    ]
    assert o.tried[1].notes == ["the same file as the sidecar it ships: judged once"]
    assert o.chosen is o.tried[2] and report.exit_code == 0
    sidecar = conv_dynamic.parent / "nr_metric_v1.int8.onnx"
    fp32_bytes = (conv_dynamic.parent / "nr_metric_v1.onnx").stat().st_size
    assert sidecar.stat().st_size < 0.8 * fp32_bytes < dynamic_bytes
    # the calibration set was synthetic: written where the registry now points, and said so
    row = json.loads(conv_dynamic.read_text())["models"][0]
    assert row["quant_mode"] == "static" and row["quant_calibration_set"] == "m/calibration/nr.npz"
    assert "synthetic" in row["quant_calibration_note"] and (conv_dynamic.parent / "calibration" / "nr.npz").is_file()
    assert row["int8_sha256"] == hashlib.sha256(sidecar.read_bytes()).hexdigest()
    # every other field, the key order and the 4-space layout stay as they were
    assert row["owner"] == "video team" and list(row)[:2] == ["id", "onnx"]
    kept = [ln for ln in before.splitlines() if "quant_mode" not in ln and "int8_sha256" not in ln]
    assert all(ln in conv_dynamic.read_text().splitlines() for ln in kept)
    # and the gate agrees with what auto wrote
    results = run_gate(conv_dynamic, ["nr"])
    assert results.verdict == "pass" and results.row("nr").coverage.int8_share == 1.0


def test_dry_run_writes_nothing_and_shows_the_patch(conv_dynamic):
    root = conv_dynamic.parent.parent
    before = _hashes(root)
    report = run_auto(conv_dynamic, ["nr"], dry_run=True)
    assert _hashes(root) == before
    assert report.written == []
    assert '-    "quant_mode": "dynamic"' not in report.diff  # the row is indented deeper
    assert '+            "quant_mode": "static",' in report.diff and "quant_calibration_set" in report.diff


def test_one_outlier_layer_is_kept_in_float_and_explain_ranks_it_first(tmp_path):
    model = modelzoo.outlier_layer_mlp(tmp_path / "src")
    reg = _repo(tmp_path, {"id": "ol", "quant_mode": "fp32", "quant_accuracy_budget_plcc": 0.0005}, model)
    ex = explain_entry("ol", reg, mode="dynamic")
    assert ex.nodes[0].node == "layer1" and ex.nodes[0].gain > 0
    # dynamic misses by far; layer1 in float lands between half the budget and the budget
    assert ex.baseline_drop > 0.001 and 0.00025 < ex.nodes[0].drop_kept < 0.0005
    report = run_auto(reg, ["ol"])
    o = report.outcomes[0]
    assert [(t.candidate.name, t.status) for t in o.tried] == [
        ("dynamic", "fail"),
        ("static", "fail"),
        ("dynamic+float", "pass"),  # the closer miss is searched first, and the search stops at a pass
    ]
    assert o.chosen is o.tried[-1] and o.chosen.candidate.exclude == ("layer1",)
    row = json.loads(reg.read_text())["models"][0]
    assert row["quant_nodes_to_exclude"] == ["layer1"] and row["quant_mode"] == o.chosen.candidate.mode
    # every producer honours the field, and the gate checks the sidecar against it
    results = run_gate(reg, ["ol"])
    assert results.verdict == "pass"
    reg.write_text(reg.read_text().replace('["layer1"]', '["layer2"]'))
    stale = run_gate(reg, ["ol"]).row("ol")
    assert stale.status == "error" and "keeps [layer1] in float" in stale.reason and "[layer2]" in stale.reason


def test_producers_keep_named_nodes_in_float_and_refuse_unknown_names(tmp_path):
    model = modelzoo.outlier_layer_mlp(tmp_path)
    calibration = {"x": np.random.default_rng(0).random((32, 16), dtype=np.float32)}
    producers = {
        "dynamic": lambda cfg: quantize_dynamic(model, tmp_path / "d.int8.onnx", config=cfg),
        "static": lambda cfg: quantize_static(model, calibration, tmp_path / "s.int8.onnx", config=cfg),
    }
    for mode, produce in producers.items():
        cfg = preset("default", mode).with_options(nodes_to_exclude=("layer2",))
        r = produce(cfg)
        assert r.coverage.float_nodes == ("layer2",) and r.coverage.int8_nodes == 3, mode
        stamp = {p.key: p.value for p in onnx.load(r.output).metadata_props}
        assert json.loads(stamp["quantgate.nodes_to_exclude"]) == ["layer2"]
        with pytest.raises(UserError, match="no node named 'nope'"):
            produce(cfg.with_options(nodes_to_exclude=("nope",)))


@pytest.fixture
def searches():
    """Searches a test drives by hand; their scratch folders are removed after it."""
    made = []
    yield made
    for s in made:
        s.close()


def _tried(name, status, *, drop=None, size=None, speed=None, verdict=None):
    from quantgate.auto import candidates as cands
    from quantgate.auto.trial import Tried
    from quantgate.results import Row

    mode = name.split("+")[0]
    c = cands.with_float(cands.first(mode), ("n",)) if "+float" in name else cands.first(mode)
    row = Row(id="m", mode=mode, status="pass" if status == "pass" else "fail", drop=drop)
    return Tried(c, status, row=row, int8_bytes=size, size_ratio=None, speed_ratio=speed, speed_verdict=verdict)


@pytest.mark.parametrize(
    ("prefer", "chosen"),
    [("cost", "dynamic"), ("size", "static"), ("accuracy", "dynamic+float"), ("speed", "static")],
)
def test_the_preference_picks_among_passing_candidates_only(tmp_path, prefer, chosen, searches):
    from quantgate.auto.search import Search

    model = modelzoo.mlp(tmp_path)
    reg = _repo(tmp_path, {"id": "x", "quant_accuracy_budget_plcc": 0.01}, model)
    s = Search(load_registry(reg).get("x"), reg, tmp_path, prefer=prefer)
    searches.append(s)
    s.trials.tried = [
        _tried("dynamic", "pass", drop=0.004, size=900, speed=0.9, verdict="faster"),
        _tried("static", "pass", drop=0.006, size=700, speed=0.7, verdict="faster"),
        _tried("static", "marginal", drop=0.0001, size=100, speed=0.1, verdict="faster"),
        _tried("dynamic", "name-only", drop=0.0, size=50, speed=0.05, verdict="faster"),
        _tried("dynamic+float", "pass", drop=0.002, size=1200, speed=0.95, verdict="faster"),
    ]
    o = s.outcome()
    assert o.found and not o.keep_fp32 and o.chosen is not None and o.chosen.candidate.name == chosen
    assert o.chosen.status == "pass"  # a marginal or int8-in-name-only candidate is never chosen


def test_speed_keeps_fp32_when_the_fastest_passing_int8_is_slower(tmp_path, searches):
    from quantgate.auto.search import Search

    reg = _repo(tmp_path, {"id": "x"}, modelzoo.mlp(tmp_path))
    s = Search(load_registry(reg).get("x"), reg, tmp_path, prefer="speed")
    searches.append(s)
    s.trials.tried = [
        _tried("dynamic", "pass", drop=0.004, speed=1.4, verdict="slower"),
        _tried("static", "pass", drop=0.004, speed=1.2, verdict="slower"),
    ]
    o = s.outcome()
    assert o.chosen is None and o.keep_fp32 and o.found and "keep fp32" in o.decision and "1.20x" in o.decision
    s.trials.tried[1] = _tried("static", "pass", drop=0.004, speed=1.02, verdict="same")
    assert s.outcome().chosen is s.trials.tried[1]  # not measurably slower: int8 ships
    s.trials.tried = [_tried("static", "fail", drop=0.02)]
    o = s.outcome()
    assert o.chosen is None and o.keep_fp32 and not o.found


def test_cost_stops_at_the_first_pass_and_size_looks_at_both_full_int8_modes(tmp_path):
    reg = _repo(tmp_path, {"id": "mlp"}, TINY / "mlp_regressor_v1.onnx")
    cost = run_auto(reg, ["mlp"], dry_run=True).outcomes[0]
    assert [(t.candidate.name, t.status) for t in cost.tried] == [("dynamic", "pass")]
    size = run_auto(reg, ["mlp"], dry_run=True, prefer="size").outcomes[0]
    assert [t.candidate.name for t in size.tried] == ["dynamic", "static"]
    assert size.chosen is min((t for t in size.tried if t.passed), key=lambda t: t.int8_bytes or 0)


def test_an_unknown_preference_is_one_line_naming_prefer_and_the_choices(tmp_path):
    from quantgate.auto.search import Search

    reg = _repo(tmp_path, {"id": "x"}, modelzoo.mlp(tmp_path))
    said = "prefer: unknown 'fastest'; use one of cost, size, speed, accuracy"
    with pytest.raises(UserError) as by_run:
        run_auto(reg, ["x"], prefer="fastest")
    with pytest.raises(UserError) as by_search:
        Search(load_registry(reg).get("x"), reg, tmp_path, prefer="fastest")
    assert str(by_run.value) == str(by_search.value) == said


def test_a_marginal_candidate_is_not_a_pass(tmp_path, searches):
    """mlp_regressor_v1's dynamic sidecar drops about 0.00018; at 16 samples against a budget of
    0.00018 its interval cannot lie on one side."""
    from quantgate.auto import candidates as cands
    from quantgate.auto.search import Search

    reg = _repo(
        tmp_path,
        {"id": "mlp", "quant_accuracy_budget_plcc": 0.00018, "quant_gate_samples": 16},
        TINY / "mlp_regressor_v1.onnx",
    )
    s = Search(load_registry(reg).get("mlp"), reg, tmp_path)
    searches.append(s)
    t = s.trials.judge(cands.first("dynamic"))
    assert t.row is not None and t.row.marginal
    assert t.status == "marginal" and not t.passed


@pytest.mark.torch
def test_auto_reaches_qat_when_no_post_training_candidate_fits(tmp_path):
    require_module("torch")
    (tmp_path / ".git").mkdir()
    shutil.copytree(REPO / "model" / "tiny", tmp_path / "model" / "tiny")
    shutil.copytree(REPO / "model" / "qat", tmp_path / "model" / "qat")
    reg = tmp_path / "model" / "tiny" / "registry.json"
    doc = json.loads(reg.read_text())
    e = next(m for m in doc["models"] if m["id"] == "outlier_mlp_v1")
    # SQNR of 35.5 dB with every weight in int8: dynamic PTQ reaches 33.9, static 29.7, and the
    # coverage floor of 1.0 leaves no node to keep in float; QAT reaches about 36.5
    del e["int8_sha256"]
    (tmp_path / "model" / "tiny" / "outlier_mlp_v1.int8.onnx").unlink()  # onboarded from fp32: no sidecar yet
    e.update(
        quant_mode="fp32",
        quant_accuracy_budget_sqnr_db=35.5,
        quant_min_int8_weight_share=1.0,
        quant_qat_config="model/qat/outlier_mlp_v1.yaml",
    )
    reg.write_text(json.dumps(doc, indent=2))
    report = run_auto(reg, ["outlier_mlp_v1"], dry_run=True)
    o = report.outcomes[0]
    names = [t.candidate.name for t in o.tried]
    assert names[:2] == ["dynamic", "static"] and names[-1] == "qat"
    assert all(t.status == "fail" for t in o.tried[:2])
    assert o.chosen is o.tried[-1] and o.chosen.row.sqnr_db >= 35.5


def test_the_action_input_auto_suggests_a_fit_for_a_failing_model_and_writes_nothing(tmp_path, monkeypatch):
    from action_support import parse_output_file, runner_env
    from quantgate import action as ep

    monkeypatch.chdir(REPO)
    w = tmp_path / "ws"
    w.mkdir()
    reg = _repo(
        w, {"id": "o", "quant_mode": "static", "quant_calibration_set": "m/cal.npz"}, TINY / "outlier_mlp_v1.onnx"
    )
    shutil.copy(TINY / "calibration" / "outlier_mlp_v1.npz", w / "m" / "cal.npz")
    quantize_static(w / "m" / "outlier_mlp_v1.onnx", w / "m" / "cal.npz")  # 0.018 against 0.01: fails
    reg.write_text(reg.read_text().replace('"owner"', '"quant_accuracy_budget_plcc": 0.01, "owner"'))
    before = _hashes(w)
    env = runner_env(
        w, tmp_path, registry="m/registry.json", auto="true", out_json="r.json", markdown_out="r.md", plots="pics"
    )
    code = ep.run({}, env)
    assert code == 1  # the verdict is the gate's: auto only suggests
    summary = (tmp_path / "file_commands" / "summary").read_text()
    assert "**quantgate auto**" in summary and "ship dynamic" in summary and "```diff" in summary
    doc = json.loads((w / "r.json").read_text())
    why = doc["models"][0]["why"]
    assert why["auto"]["found"] is True and why["auto"]["decision"].startswith("ship dynamic")
    after = _hashes(w)
    assert {k: v for k, v in after.items() if k not in ("r.json", "r.md") and not k.startswith("pics/")} == before
    out = parse_output_file((tmp_path / "file_commands" / "out").read_text())
    assert out["verdict"] == "fail" and out["plots_path"] == "pics"
    assert sorted(p.name for p in (w / "pics").iterdir()) == ["o.error.png", "o.scatter.png"]
