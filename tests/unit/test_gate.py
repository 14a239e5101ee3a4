"""The gate on real ONNX Runtime sessions: pass, fail, every kind of error, hostile models."""

import shutil

import numpy as np
import onnx
from onnx import numpy_helper

import modelzoo
from conftest import write_registry
from gate_support import (
    _validate_results,
    gate_row,
    perturbed_sidecar,
)
from quantgate.gate import run_gate
from quantgate.paths import sha256_file
from quantgate.produce.dynamic import quantize_dynamic


def test_corrupt_fp32_model_is_an_error_row(repo):
    bad = modelzoo.corrupt(repo)
    shutil.copy(bad, repo / (bad.name[:-5] + ".int8.onnx"))
    row = gate_row(repo, bad, "c")
    assert row["status"] == "error" and "cannot load" in row["reason"]


def test_multi_input_model_feeds_every_input(repo):
    fp32 = modelzoo.two_inputs(repo)
    perturbed_sidecar(fp32)
    row = gate_row(repo, fp32, "two")
    assert row["status"] == "pass", row["reason"]
    assert len(row["inputs"]) == 2


def test_fp16_input_model_is_fed_fp16(repo):
    fp32 = modelzoo.fp16_input(repo)
    perturbed_sidecar(fp32)
    row = gate_row(repo, fp32, "h")
    assert row["status"] == "pass", row["reason"]
    assert row["inputs"][0]["dtype"] == "float16"


def test_integer_input_is_drawn_inside_the_embedding_table(repo):
    fp32 = modelzoo.int_input(repo)
    perturbed_sidecar(fp32)
    row = gate_row(repo, fp32, "tok")
    assert row["status"] == "pass", row["reason"]
    spec = row["inputs"][0]
    assert spec["dtype"] == "int64" and spec["high"] == 50 and "embedding rows" in spec["source"]
    # bounds that would draw one id over and over, or ids past the table, are refused with the fix
    for bounds, said in (
        ({"high": 1.5}, "low 0 / high 1.5 would draw only 0; give whole numbers"),
        ({"low": 0.5, "high": 4}, "would draw 0 to 3"),
        ({"high": 60}, "high 60 is past the 50 rows of the table it indexes"),
    ):
        row = gate_row(repo, fp32, "tok", quant_inputs={"ids": bounds})
        assert row["status"] == "error" and said in row["reason"], row["reason"]
    assert gate_row(repo, fp32, "tok", quant_inputs={"ids": {"high": 50}})["status"] == "pass"


def test_symbolic_dims_default_to_one_and_spec_overrides_them(repo):
    fp32 = modelzoo.conv_symbolic(repo)
    perturbed_sidecar(fp32)
    sig = onnx.load(str(fp32)).graph.input[0].type.tensor_type.shape.dim
    names = [d.dim_param for d in sig]
    h, w = names[2], names[3]
    inp_name = onnx.load(str(fp32)).graph.input[0].name
    reg = write_registry(repo / "registry.json", [{"id": "conv", "onnx": fp32.name, "quant_mode": "dynamic"}])
    row = run_gate(reg).to_json()["models"][0]
    # this conv net cannot run at H=W=1: it says how to fix it
    assert row["status"] == "error" and "quant_inputs" in row["reason"] and "[1, 1, 1, 1]" in row["reason"]
    padded = modelzoo.conv_padded(repo)  # one that can: every symbolic dim drawn as 1
    perturbed_sidecar(padded)
    one = write_registry(repo / "one.json", [{"id": "padded", "onnx": padded.name, "quant_mode": "dynamic"}])
    row = run_gate(one).to_json()["models"][0]
    assert row["status"] == "pass", row["reason"]
    assert row["inputs"][0]["shape"] == [1, 1, 1, 1] and row["inputs"][0]["source"] == "signature"
    write_registry(
        reg,
        [
            {
                "id": "conv",
                "onnx": fp32.name,
                "quant_mode": "dynamic",
                "quant_inputs": {inp_name: {"dims": {h: 24, w: 20}}},
            }
        ],
    )
    row = run_gate(reg).to_json()["models"][0]
    assert row["status"] == "pass", row["reason"]
    assert row["inputs"][0]["shape"] == [1, 1, 24, 20]
    write_registry(
        reg,
        [
            {
                "id": "conv",
                "onnx": fp32.name,
                "quant_mode": "dynamic",
                "quant_inputs": {inp_name: {"shape": [2, 1, 16, 16], "low": -1, "high": 1}},
            }
        ],
    )
    row = run_gate(reg).to_json()["models"][0]
    assert row["status"] == "pass", row["reason"]
    assert row["inputs"][0]["shape"] == [2, 1, 16, 16] and row["inputs"][0]["low"] == -1


def test_quant_inputs_for_unknown_input_is_an_error_row(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic", "quant_inputs": {"nope": {"low": 0, "high": 2}}}],
    )
    row = run_gate(reg).to_json()["models"][0]
    assert row["status"] == "error" and "'nope'" in row["reason"]


def test_every_output_is_reported_and_the_worst_judged(repo):
    fp32 = modelzoo.multi_output(repo)
    perturbed_sidecar(fp32, scale=0.05)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "mo", "onnx": fp32.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 1.0}],
    )
    row = run_gate(reg).to_json()["models"][0]
    assert len(row["outputs"]) == 2 and all(o["judged"] for o in row["outputs"])
    assert row["drop"] == max(o["drop"] for o in row["outputs"])
    first = row["outputs"][0]["name"]
    write_registry(
        reg,
        [
            {
                "id": "mo",
                "onnx": fp32.name,
                "quant_mode": "dynamic",
                "quant_gate_outputs": [first],
                "quant_accuracy_budget_plcc": 1.0,
            }
        ],
    )
    row2 = run_gate(reg).to_json()["models"][0]
    assert row2["judged_output"] == first and row2["drop"] == row2["outputs"][0]["drop"]


def test_constant_output_identical_passes_and_differing_fails(repo):
    fp32 = modelzoo.constant_output(repo)
    m = onnx.load(str(fp32))  # every value the same, so PLCC itself is undefined
    for t in m.graph.initializer:
        if t.name == "c":
            t.CopyFrom(numpy_helper.from_array(np.full(4, 0.5, np.float32), "c"))
    onnx.save(m, str(fp32))
    modelzoo.int8_standin(fp32)
    reg = write_registry(repo / "registry.json", [{"id": "k", "onnx": fp32.name, "quant_mode": "dynamic"}])
    row = run_gate(reg, max_samples=4096).to_json()["models"][0]
    assert row["status"] == "pass" and "constant" in row["reason"]
    # exact agreement is decided only at the cap (a difference on one input in thousands shows late),
    # then it is decided: not marginal, with how rare a difference could still be
    assert not row.get("marginal") and row["samples"] == 4096 and row["drop_ci"] == [0.0, 0.0]
    assert "fewer than 1 input in 1,366" in row["reason"]
    assert any("every judged output is the same on all 4096 gate inputs" in w for w in row["warnings"])
    m = onnx.load(str(fp32))
    for t in m.graph.initializer:
        if t.name == "c":
            t.CopyFrom(numpy_helper.from_array(np.full(4, 0.75, np.float32), "c"))
    onnx.save(m, str(repo / "other.onnx"))
    modelzoo.int8_standin(repo / "other.onnx", repo / (fp32.name[:-5] + ".int8.onnx"))
    row = run_gate(reg, max_samples=4096).to_json()["models"][0]
    assert row["status"] == "fail" and "constant output differs" in row["reason"]


def test_external_data_model_is_gated(repo):
    """Its weights count in its size, and a change to them alone makes the sidecar stale."""
    fp32 = modelzoo.external_data(repo)
    data = repo / "external_data.onnx.data"
    assert data.is_file()
    produced = quantize_dynamic(fp32)
    row = gate_row(repo, fp32, "ext", quant_accuracy_budget_plcc=0.5)
    assert row["status"] == "pass", row["reason"]
    assert row["fp32_bytes"] == fp32.stat().st_size + data.stat().st_size == produced.report["fp32_bytes"]
    assert row["size_ratio"] == round(row["int8_bytes"] / row["fp32_bytes"], 6)
    onnx_bytes = fp32.read_bytes()
    modelzoo.external_data(repo, seed=3)  # retrained: new weights in the .data file, the same .onnx bytes
    assert fp32.read_bytes() == onnx_bytes
    row = gate_row(repo, fp32, "ext", quant_accuracy_budget_plcc=0.5)
    assert row["status"] == "error" and "is stale: the fp32 weights in external_data.onnx.data changed" in row["reason"]


def test_same_inputs_same_figures(repo):
    fp32 = modelzoo.two_inputs(repo)
    perturbed_sidecar(fp32)
    reg = write_registry(repo / "registry.json", [{"id": "two", "onnx": fp32.name, "quant_mode": "dynamic"}])
    a, b = run_gate(reg).to_json(), run_gate(reg).to_json()
    for doc in (a, b):
        doc.pop("run_provenance")
        assert doc["models"][0].pop("loop_timing")["samples"] > 0  # the one figure timed, not computed
    assert a == b
    c = run_gate(reg, seed=1).to_json()
    assert c["models"][0]["drop"] != a["models"][0]["drop"]


def test_results_record_provenance_and_digests(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5}],
    )
    prov = run_gate(reg).to_json()["run_provenance"]
    assert prov["versions"]["onnxruntime"] and prov["cpu"]["model"]
    assert isinstance(prov["cpu"]["int8_features"], list)
    assert prov["inputs"]["mlp:int8"]["sha256"] == sha256_file(repo / "mlp.int8.onnx")
    assert prov["inputs"]["registry"]["sha256"] == sha256_file(reg)


def test_eval_set_replaces_the_random_draws(repo):
    fp32 = modelzoo.two_inputs(repo)
    perturbed_sidecar(fp32)
    rng = np.random.default_rng(5)
    (repo / "eval").mkdir()
    modelzoo.write_npz(
        repo / "eval" / "two.npz", a=rng.random((40, 8), dtype=np.float32) * 3, b=rng.random((40, 8), dtype=np.float32)
    )
    reg = write_registry(
        repo / "registry.json",
        [{"id": "two", "onnx": fp32.name, "quant_mode": "dynamic", "quant_eval_set": "eval/two.npz"}],
    )
    results = run_gate(reg).to_json()
    _validate_results(results)
    row = results["models"][0]
    assert row["status"] == "pass", row["reason"]
    assert row["samples"] == 40 and row["inputs"][0]["source"] == "eval set eval/two.npz"
    assert row["sampling"]["stopped"] == "eval set" and not row["marginal"]  # the whole set: decided
    # the same caps as drawn samples: its first 32 rows (--max-samples 32), and the row says so
    capped = run_gate(reg, max_samples=32).to_json()["models"][0]
    assert capped["samples"] == 32 and capped["sampling"]["stopped"] == "sample cap"
    assert capped["marginal"] and "all 40 rows of the eval set" in capped["reason"]
    # five rows are too few for any verdict: marginal by construction, counted as a fail by default
    modelzoo.write_npz(
        repo / "eval" / "two.npz", a=rng.random((5, 8), dtype=np.float32), b=rng.random((5, 8), dtype=np.float32)
    )
    row = run_gate(reg).to_json()["models"][0]
    assert row["status"] == "fail" and row["marginal"] and row["on_marginal"] == "fail"
    assert "marginal at 5 samples: fewer than the 32 samples a verdict needs; a larger eval set" in row["reason"]
    assert row.get("why") is None  # its fix is more rows, not another sidecar: no node ranking, no auto command
    assert run_gate(reg, on_marginal="warn").to_json()["models"][0]["status"] == "pass"
    modelzoo.write_npz(
        repo / "eval" / "two.npz", a=rng.random((40, 8), dtype=np.float32) * 3, b=rng.random((40, 8), dtype=np.float32)
    )
    assert (
        row["drop"]
        != run_gate(
            write_registry(repo / "r2.json", [{"id": "two", "onnx": fp32.name, "quant_mode": "dynamic"}])
        ).to_json()["models"][0]["drop"]
    )
    modelzoo.write_npz(repo / "eval" / "two.npz", a=np.zeros((5, 8), np.float32))
    row = run_gate(reg).to_json()["models"][0]
    assert row["status"] == "error" and "missing 'b'" in row["reason"]
    (repo / "eval" / "two.npz").unlink()
    row = run_gate(reg).to_json()["models"][0]
    assert row["status"] == "error" and "eval set not found" in row["reason"]
    assert "calibrate build" not in row["reason"]  # an eval set is saved by the user, not built


def test_a_sidecar_made_from_another_fp32_is_stale(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    assert gate_row(repo, fp32, quant_accuracy_budget_plcc=0.5)["status"] == "pass"
    modelzoo.mlp(repo, seed=7)  # the fp32 model is retrained; its sidecar is not re-produced
    row = gate_row(repo, fp32, quant_accuracy_budget_plcc=0.5)
    assert row["status"] == "error" and "is stale" in row["reason"] and "ptq-dynamic" in row["reason"]
    quantize_dynamic(fp32)
    assert gate_row(repo, fp32, quant_accuracy_budget_plcc=0.5)["status"] == "pass"


def test_an_output_whose_length_varies_is_judged_on_every_value(repo):
    fp32 = modelzoo.variable_length(repo)  # 0 to 16 values a sample, often none
    row = gate_row(repo, fp32, "v")
    assert row["status"] == "pass", row["reason"]
    out = row["outputs"][0]
    assert out["drop"] > 0 and out["drop_ci"][0] <= out["drop"] <= out["drop_ci"][1]
    # empty samples add nothing: fewer samples carry values than were run
    assert 0 < out["samples"] < row["samples"]


def test_batches_change_no_figure_and_a_dynamic_sidecar_runs_one_at_a_time(repo, monkeypatch):
    """A static (fixed-scale) sidecar whose batch axis is free runs in batches, with exactly the
    figures of one-at-a-time runs; a dynamic one, whose activation scale is taken over the whole
    batch, would not give the same outputs, so it is never batched."""
    from conftest import REPO
    from quantgate.gate import runner

    for stem in ("outlier_mlp_v1", "mlp_regressor_v1"):  # [batch, n] inputs: QAT (QDQ) and dynamic
        for suffix in (".onnx", ".int8.onnx"):
            shutil.copy(REPO / "model" / "tiny" / (stem + suffix), repo / (stem + suffix))
    batched = gate_row(repo, repo / "outlier_mlp_v1.onnx", "st", quant_mode="qat", quant_gate_samples=600)
    assert batched["loop_timing"]["batch"] > 1
    monkeypatch.setattr(runner, "BATCH_ELEMENTS", 1)  # one sample a call
    single = gate_row(repo, repo / "outlier_mlp_v1.onnx", "st", quant_mode="qat", quant_gate_samples=600)
    assert single["loop_timing"]["batch"] == 1
    for k in ("drop", "drop_ci", "sqnr_db", "max_abs_error", "worst_sample", "samples"):
        assert batched[k] == single[k], k
    monkeypatch.undo()
    row = gate_row(repo, repo / "mlp_regressor_v1.onnx", "dy", quant_gate_samples=600)
    assert row["status"] == "pass" and row["loop_timing"]["batch"] == 1


def test_an_eval_set_is_read_a_row_at_a_time_and_a_bad_row_is_named(repo):
    fp32 = modelzoo.two_inputs(repo)
    perturbed_sidecar(fp32)
    (repo / "eval").mkdir()
    rng = np.random.default_rng(6)
    a, b = rng.random((60, 8), dtype=np.float32), rng.random((60, 8), dtype=np.float32)
    a[37, 3] = np.nan
    modelzoo.write_npz(repo / "eval" / "two.npz", a=a, b=b)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "two", "onnx": fp32.name, "quant_mode": "dynamic", "quant_eval_set": "eval/two.npz"}],
    )
    row = run_gate(reg).to_json()["models"][0]
    assert row["status"] == "error" and "'a': holds NaN/inf values in sample 37" in row["reason"], row["reason"]
    from quantgate.gate.entry import check_entry
    from quantgate.registry import load_registry

    r = load_registry(reg)
    problems, _ = check_entry(r.entries[0], r.path, r.root)  # validate reads every row too
    assert problems and "sample 37" in str(problems[0]) and problems[0].where.endswith("quant_eval_set")


def test_validate_words_a_gate_check_from_the_errors_parts(repo):
    """One error shape: a check the gate makes before it measures (an unknown quant_gate_outputs
    name, a digest that does not match) reaches `validate` as a registry problem at its field's
    line, built from the error's parts: the registry and the id said once, the fix as '; fix:'."""
    from quantgate.errors import Problem, UserError
    from quantgate.gate.entry import check_entry
    from quantgate.registry import load_registry

    fp32 = modelzoo.mlp(repo)
    perturbed_sidecar(fp32)
    reg = write_registry(
        repo / "registry.json",
        [
            {"id": "outs", "onnx": fp32.name, "quant_mode": "dynamic", "quant_gate_outputs": ["nope"]},
            {"id": "dig", "onnx": fp32.name, "quant_mode": "dynamic", "int8_sha256": "0" * 64},
        ],
    )
    r = load_registry(reg)
    outs, _ = check_entry(r.entries[0], r.path, r.root)
    dig, _ = check_entry(r.entries[1], r.path, r.root)
    assert isinstance(outs[0], Problem) and isinstance(outs[0], UserError)
    assert outs[0].where == "models[0].quant_gate_outputs"
    assert outs[0].line == r.entries[0].line_of("quant_gate_outputs")
    assert outs[0].message == "outs: names nope, not outputs of the model", outs[0].message  # the place names the field
    assert str(outs[0]).count(str(r.path)) == 1 and outs[0].fix == "name some of y"
    assert str(outs[0]).count("quant_gate_outputs") == 1, str(outs[0])
    assert dig[0].where == "models[1].int8_sha256" and dig[0].message.startswith("dig: int8_sha256 of mlp.int8.onnx")
    assert dig[0].fix == "re-produce the file or update int8_sha256"
    assert str(dig[0]).endswith("; refusing to load it; fix: re-produce the file or update int8_sha256"), str(dig[0])
    assert str(r.path) not in dig[0].message  # the registry is the problem's file, not said again in it


def test_typed_row_blocks_write_the_documented_json_and_read_it_back_byte_for_byte(repo):
    """Row's blocks (budgets, sampling, latency, inputs) are typed; their JSON keeps the shape
    docs/cli.md documents, key order included, and a document read back writes the same bytes."""
    import json

    from quantgate.results import Results
    from quantgate.rowblocks import Latency

    fp32 = modelzoo.mlp(repo)
    perturbed_sidecar(fp32)
    reg = write_registry(repo / "registry.json", [{"id": "m", "onnx": fp32.name, "quant_mode": "dynamic"}])
    doc = run_gate(reg, samples=32, bench=True).to_json()
    row = doc["models"][0]
    keys = ["mode", "samples", "stopped", "steps", "planned", "look_confidence", "bootstrap", "note"]
    assert list(row["sampling"]) == keys, row["sampling"]  # a pinned count says so in a note
    assert list(row["sampling"]["bootstrap"]) == ["method", "replicates", "confidence", "tail_allowance", "seed"]
    assert list(row["budgets"]) == ["drop", "gain_offset"]
    assert list(row["latency"]) == ["method", "cpu", "int8_kernels", "logical_cores", "timings", "notes"]
    assert list(row["inputs"][0]) == ["name", "dtype", "shape", "low", "high", "source"]
    assert json.dumps(Results.from_json(doc).to_json()) == json.dumps(doc)
    untimed = Latency(method="m", notes=("not timed: x",)).to_json()
    assert untimed == {"method": "m", "timings": [], "notes": ["not timed: x"]}
    assert list(untimed) == ["method", "timings", "notes"]
