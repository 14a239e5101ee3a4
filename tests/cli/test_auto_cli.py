"""`quantgate auto`, `quantgate explain`, `--exclude-node` and `--plots` as a user runs them; the
failing row's "why" in the comment and the job summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import modelzoo
from conftest import assert_one_line_error, run_cli, write_registry
from quantgate.report.comment import render_comment
from quantgate.report.markdown import render_markdown

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "model" / "tiny"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ol_repo(repo):
    """The outlier-layer MLP, listed fp32 with a budget dynamic PTQ misses."""
    modelzoo.outlier_layer_mlp(repo / "m", "ol")
    write_registry(repo / "m" / "registry.json", [{"id": "ol", "onnx": "ol.onnx", "quant_accuracy_budget_plcc": 0.001}])
    return repo


def test_auto_dry_run_prints_the_candidates_and_the_patch_and_exits_0(ol_repo):
    proc = run_cli("auto", "ol", "--registry", "m/registry.json", "--dry-run", cwd=ol_repo, check_rc=0)
    out = proc.stdout
    assert "dynamic+float" in out and "1 in float: layer1" in out and "← chosen" in out
    assert "registry patch (not applied: --dry-run):" in out
    assert '+      "quant_nodes_to_exclude": ["layer1"],' in out and '+      "quant_mode": "dynamic",' in out
    assert not (ol_repo / "m" / "ol.int8.onnx").exists()


def test_auto_without_a_fit_exits_1_and_keeps_the_registry(ol_repo):
    reg = ol_repo / "m" / "registry.json"
    reg.write_text(reg.read_text().replace("0.001", "0.0000001"))
    before = reg.read_text()
    proc = run_cli("auto", "ol", "--registry", reg, "--max-float-nodes", "1", cwd=ol_repo)
    assert proc.returncode == 1, proc.stderr
    assert "keep fp32: no candidate meets every budget" in proc.stdout and "registry: no change" in proc.stdout
    assert reg.read_text() == before and not (ol_repo / "m" / "ol.int8.onnx").exists()


def test_auto_report_plots_and_usage_errors(ol_repo, tmp_path):
    reg = ol_repo / "m" / "registry.json"
    reg.write_bytes(reg.read_bytes().replace(b"\n", b"\r\n").replace(b"  ", b"\t"))  # CRLF and tabs
    before = reg.read_bytes()
    proc = run_cli("auto", "ol", "--registry", reg, "--dry-run", "--report-out", "a.json", cwd=ol_repo, check_rc=0)
    assert reg.read_bytes() == before and not (ol_repo / "m" / "ol.int8.onnx").exists()
    patch = json.loads((ol_repo / "a.json").read_text())["registry_diff"]
    assert '+\t\t\t"quant_nodes_to_exclude": ["layer1"],\r\n' in patch  # the exact patch, tabs and CRLF kept
    assert_one_line_error(
        run_cli("auto", "nope", "--registry", "m/registry.json", cwd=ol_repo), "no model with id 'nope'", "ol"
    )
    plots = tmp_path / "pics"
    proc = run_cli(
        "auto", "ol", "--registry", "m/registry.json", "--report-out", "auto.json", "--plots", plots, cwd=ol_repo
    )
    assert proc.returncode == 0, proc.stderr
    after = reg.read_bytes()
    assert after.count(b"\n") == after.count(b"\r\n") and b"\t\t" in after  # written in place, CRLF and tabs kept
    doc = json.loads((ol_repo / "auto.json").read_text())
    model = doc["models"][0]
    assert model["candidates"][model["chosen"]]["nodes_to_exclude"] == ["layer1"]
    assert doc["registry_diff"].startswith("--- a/m/registry.json") and doc["run_provenance"]
    assert (plots / "ol.candidates.png").read_bytes().startswith(PNG)
    # what auto wrote passes the gate, with pictures
    proc = run_cli("gate", "--registry", "m/registry.json", "--plots", plots, cwd=ol_repo, check_rc=0)
    assert (plots / "ol.scatter.png").read_bytes().startswith(PNG)
    assert (plots / "ol.error.png").read_bytes().startswith(PNG)


def test_explain_ranks_the_outlier_layer_first(ol_repo, tmp_path):
    proc = run_cli(
        "explain", "ol", "--registry", "m/registry.json", "--mode", "dynamic", "--json-out", "ex.json",
        "--plots", tmp_path, cwd=ol_repo, check_rc=0,
    )  # fmt: skip
    table = proc.stdout.splitlines()
    first = next(i for i, ln in enumerate(table) if ln.strip().startswith("node"))
    assert table[first + 1].split()[0] == "layer1"
    doc = json.loads((ol_repo / "ex.json").read_text())
    assert doc["nodes"][0]["node"] == "layer1" and doc["nodes"][0]["drop_kept"] < doc["baseline_drop"]
    assert (tmp_path / "ol.nodes.png").read_bytes().startswith(PNG)
    # an .onnx path works too, with no registry
    proc = run_cli("explain", ol_repo / "m" / "ol.onnx", "--registry", "none.json", "--top", "2", check_rc=0)
    assert "layer1" in proc.stdout


def test_exclude_node_against_the_registry_and_unknown_names(ol_repo):
    reg = ol_repo / "m" / "registry.json"
    reg.write_text(
        reg.read_text().replace(
            '"onnx": "ol.onnx",', '"onnx": "ol.onnx", "quant_mode": "dynamic", "quant_nodes_to_exclude": ["layer1"],'
        )
    )
    model = ol_repo / "m" / "ol.onnx"
    line = assert_one_line_error(
        run_cli("ptq-dynamic", model, "--registry-id", "ol", "--registry", reg, "--exclude-node", "layer2"),
        "quant_nodes_to_exclude",
        "layer2",
    )
    assert "leave out --exclude-node" in line
    proc = run_cli("ptq-dynamic", model, "--registry-id", "ol", "--registry", reg, check_rc=0)
    assert "int8 weights 56% (3/4 nodes)" in proc.stdout
    run_cli("gate", "ol", "--registry", reg, check_rc=0)
    assert_one_line_error(
        run_cli("ptq-dynamic", model, "-o", ol_repo / "x.int8.onnx", "--exclude-node", "nope"), "nope"
    )


def test_a_failing_row_says_why_in_the_terminal_the_summary_and_the_comment(repo):
    shutil.copy(TINY / "outlier_mlp_v1.onnx", repo / "o.onnx")
    run_cli("ptq-static", repo / "o.onnx", "-c", TINY / "calibration" / "outlier_mlp_v1.npz", check_rc=0)
    proc = run_cli("gate", repo / "o.onnx", "--json-out", repo / "r.json", "--samples", "256", cwd=repo)
    assert proc.returncode == 1
    assert "adds error: /fc" in proc.stdout and "fix: quantgate auto" in proc.stdout
    from quantgate.results import Results

    results = Results.read(repo / "r.json")
    row = results.row("o")
    assert row.why and row.why["nodes"] and row.why["fix"].startswith("quantgate auto")
    body = render_comment(results)
    assert "<details><summary>Why `o` fails, and the fix</summary>" in body
    assert f"`{row.why['nodes'][0]['node']}`" in body and "`quantgate auto" in body
    assert "the nodes that add the most error" in render_markdown(results)


def test_a_plots_folder_that_cannot_be_written_stops_every_command_before_any_work(ol_repo):
    (ol_repo / "afile").write_text("x")
    bad = ol_repo / "afile" / "pics"
    reg = ol_repo / "m" / "registry.json"
    before = reg.read_bytes()
    for args in (
        ("auto", "ol", "--registry", reg),
        ("explain", "ol", "--registry", reg),
        ("gate", "--registry", reg, "--json-out", ol_repo / "r.json"),
    ):
        assert_one_line_error(run_cli(*args, "--plots", bad, cwd=ol_repo), "--plots", "afile/pics")
    assert reg.read_bytes() == before and not (ol_repo / "m" / "ol.int8.onnx").exists()
    assert not (ol_repo / "r.json").exists()


def test_a_model_no_mode_can_quantise_is_one_line_with_one_fix(repo):
    """Nothing to quantise (a lone Sin): every candidate is refused, and the line names the model
    once and gives the first refusal's own fix, not a second one after it."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Sin", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), repo / "m.onnx")
    reg = write_registry(repo / "registry.json", [{"id": "m1", "onnx": "m.onnx", "quant_mode": "dynamic"}])
    proc = run_cli("auto", "m1", "--registry", reg, "--dry-run", "--no-qat", cwd=repo)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = next(ln for ln in (proc.stdout + proc.stderr).splitlines() if "no int8 candidate" in ln)
    assert line.count("m1") == 1 and line.count("; ") == 1, line


def test_the_gate_pictures_draw_with_the_gates_seed(ol_repo, tmp_path, monkeypatch):
    """The scatter shows samples drawn with --seed, as the gate's figures were (not a fixed seed)."""
    import quantgate.diagnose as diagnose

    seeds: list[int] = []
    real = diagnose.make_probe

    def recording(*args, **kwargs):
        seeds.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(diagnose, "make_probe", recording)
    produce = ("ptq-dynamic", "m/ol.onnx", "--registry", "m/registry.json", "--registry-id", "ol", "--set-mode")
    run_cli(*produce, cwd=ol_repo, check_rc=0)
    args = ("gate", "--registry", "m/registry.json", "--samples", "32", "--plots", tmp_path)
    run_cli(*args, "--seed", "7", cwd=ol_repo)
    assert seeds == [7], seeds
