"""The shipped registry as an AVX2-only x86 CPU computes it: `qemu-x86_64 -cpu Haswell` runs the
unmodified venv, `cpuid` answers as a Haswell and ONNX Runtime picks its AVX2 integer kernels.
Skips loudly where qemu-user cannot be had (.ci/run installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import modelzoo
from conftest import REPO, run_cli, write_registry
from quantgate.produce.dynamic import quantize_dynamic

QEMU = shutil.which("qemu-x86_64")
pytestmark = pytest.mark.skipif(
    QEMU is None, reason="NO qemu-x86_64: the AVX2 checks did NOT run; apt-get install qemu-user"
)


def _gate(tmp_path, name, *prefix):
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "quantgate", "gate", "-q", "--out-json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_shipped_registry_same_verdicts_natively_and_as_avx2_computes_it(tmp_path):
    native = _gate(tmp_path, "native")
    avx2 = _gate(tmp_path, "avx2", QEMU, "-cpu", "Haswell")
    assert avx2["run_provenance"]["cpu"]["int8_kernels"]["u8s8"] == "saturating"  # the emulation took
    assert avx2["run_provenance"]["cpu"]["int8_features"] == ["avx2"]
    verdicts = {r["id"]: r["status"] for r in native["models"]}
    assert verdicts == {r["id"]: r["status"] for r in avx2["models"]}
    assert native["verdict"] == "pass", [(r["id"], r["reason"]) for r in native["models"]]


def test_avx2_check_reports_both_figures(repo):
    fp32 = modelzoo.mlp(repo)
    quantize_dynamic(fp32)
    reg = write_registry(repo / "registry.json", [{"id": "mlp", "onnx": fp32.name, "quant_mode": "dynamic"}])
    proc = run_cli(
        "gate", "--registry", reg, "--samples", "256", "--avx2-check", "--out-json", repo / "r.json", cwd=repo
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads((repo / "r.json").read_text())["models"][0]
    a = row["avx2"]
    assert a["status"] == "pass" and a["samples"] == row["samples"] == 256
    assert a["int8_kernels"]["u8s8"] == "saturating" and "Haswell" in a["cpu"]
    assert isinstance(a["drop"], float) and a["drop_ci"][0] <= a["drop"] <= a["drop_ci"][1]
