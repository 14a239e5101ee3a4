"""The shipped registry as an AVX2-only x86 CPU computes it: `--avx2-check` runs the int8 side under
`qemu-x86_64 -cpu Haswell`, whose `cpuid` answers as a Haswell, so ONNX Runtime picks its AVX2 integer
kernels. Skips loudly where qemu-user cannot be had, and fails under CI=true (.ci/run installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import modelzoo
from conftest import REPO, require_tool, run_cli, write_registry
from quantgate.produce.dynamic import quantize_dynamic

QEMU = shutil.which("qemu-x86_64")


@pytest.fixture(autouse=True)
def _qemu():
    require_tool(QEMU is not None, "NO qemu-x86_64: the AVX2 checks did NOT run; apt-get install qemu-user")


def test_shipped_registry_same_verdicts_natively_and_as_avx2_computes_it(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "quantgate", "gate", "--avx2-check", "-q", "--json-out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    measured = [r for r in doc["models"] if r["status"] in ("pass", "fail")]
    assert measured and all(r["avx2"]["int8_kernels"]["u8s8"] == "saturating" for r in measured)  # it took
    assert {r["id"]: r["avx2"]["status"] for r in measured} == {r["id"]: r["status"] for r in measured}
    assert doc["verdict"] == "pass", [(r["id"], r["reason"]) for r in doc["models"]]


def test_avx2_check_reports_both_figures(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(repo / "registry.json", [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}])
    proc = run_cli(
        "gate", "--registry", reg, "--samples", "256", "--avx2-check", "--json-out", repo / "r.json", cwd=repo
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads((repo / "r.json").read_text())["models"][0]
    a = row["avx2"]
    assert a["status"] == "pass" and a["samples"] == row["samples"] == 256
    assert a["int8_kernels"]["u8s8"] == "saturating" and "Haswell" in a["cpu"]
    assert isinstance(a["drop"], float) and a["drop_ci"][0] <= a["drop"] <= a["drop_ci"][1]
    said = f"as an AVX2-only CPU computes it (emulated): PASS drop={a['drop']:.6f}"
    assert said in proc.stdout and f"n={a['samples']}" in proc.stdout  # the terminal shows both figures


def test_avx2_check_judges_an_output_whose_length_varies(repo):
    fp32 = modelzoo.variable_length(repo, threshold=0.5)
    reg = write_registry(
        repo / "registry.json",
        [{"id": "v", "onnx": fp32.name, "quant_mode": "static", "quant_calibration_set": "c.npz"}],
    )
    proc = run_cli(
        "gate", "--registry", reg, "--samples", "64", "--avx2-check", "--json-out", repo / "r.json", cwd=repo
    )
    row = json.loads((repo / "r.json").read_text())["models"][0]
    assert proc.returncode == 0 and row["avx2"]["status"] == "pass", (row["reason"], row["avx2"])
    assert row["avx2"]["drop"] == pytest.approx(row["drop"], rel=1e-6)
