"""Hostile input, round 3, through the real `quantgate` command: files that must not be read (a
sidecar symlinked out of the repository, to a secret or to /proc/self/pagemap), a registry whose
entry says one thing to a reviewer and another to the gate (a repeated key), a calibration set
that asks ONNX Runtime's calibrator for 440 times its size, a producer whose report cannot be
written after its sidecar was, and two producers recording into one registry at once.

Memory is bounded with RLIMIT_DATA in the child (never a real allocation of GiBs); every case checks
the exit code, one line naming the file, the field and the fix, and that nothing is half written.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hostile
import modelzoo
from conftest import assert_one_line_error, require_module, require_tool, run_cli, write_registry
from quantgate.produce.dynamic import quantize_dynamic


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return hostile.good_mlp_checkout(tmp_path_factory.mktemp("hostile-files"))


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --- files the gate refuses are never read -----------------------------------------------------


def _linked_registry(zoo: Path, name: str, target: Path) -> Path:
    (zoo / f"{name}.onnx").write_bytes((zoo / "good.onnx").read_bytes())
    link = zoo / f"{name}.int8.onnx"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target)
    return write_registry(
        zoo / f"r.{name}.json",
        [
            {"id": "good", "onnx": "good.onnx", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5},
            {"id": name, "onnx": f"{name}.onnx", "quant_mode": "dynamic"},
        ],
    )


def test_a_sidecar_symlinked_to_a_secret_is_neither_read_nor_digested(zoo, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:the secret the gate must not publish a digest of\n")
    reg = _linked_registry(zoo, "secret", secret)
    out = tmp_path / "r.json"
    proc = run_cli("gate", "--registry", reg, "--samples", "32", "--json-out", out, cwd=zoo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    doc = json.loads(out.read_text())
    rows = {r["id"]: r for r in doc["models"]}
    assert rows["good"]["status"] == "pass" and rows["secret"]["status"] == "error"
    assert "leads outside the repository" in rows["secret"]["reason"]
    inputs = doc["run_provenance"]["inputs"]
    assert "good:int8" in inputs and not any(k.startswith("secret:") for k in inputs)
    assert _sha(secret) not in out.read_text()


def test_a_sidecar_symlinked_to_proc_pagemap_is_never_read(zoo, tmp_path):
    pagemap = Path("/proc/self/pagemap")
    require_tool(pagemap.exists(), "NO /proc/self/pagemap here: the case did NOT run")
    reg = _linked_registry(zoo, "pagemap", pagemap)
    out = tmp_path / "r.json"
    # Read, it is hundreds of GB (402 s in the report that found it): the timeout is the check.
    proc = run_cli("gate", "--registry", reg, "--samples", "32", "--json-out", out, cwd=zoo, timeout=120)
    assert proc.returncode == 2, proc.stderr
    rows = {r["id"]: r for r in json.loads(out.read_text())["models"]}
    assert rows["pagemap"]["status"] == "error" and rows["good"]["status"] == "pass"


# --- a repeated key ---------------------------------------------------------------------------

DUPLICATE = """{
  "models": [
    {"id": "good", "onnx": "good.onnx", "quant_mode": "dynamic", "quant_accuracy_budget_plcc": 0.5},
    {
      "id": "dup",
      "onnx": "good.onnx",
      "quant_mode": "dynamic",
      "quant_accuracy_budget_plcc": 0.001,
      "notes": "a reviewer reads the budget above",
      "quant_accuracy_budget_plcc": 0.9
    }
  ]
}
"""


def test_a_key_repeated_in_an_entry_refuses_that_entry_at_its_line(zoo, tmp_path):
    reg = zoo / "r.dup.json"
    reg.write_text(DUPLICATE)
    out = tmp_path / "r.json"
    proc = run_cli("gate", "--registry", reg, "--samples", "32", "--json-out", out, cwd=zoo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    rows = {r["id"]: r for r in json.loads(out.read_text())["models"]}
    assert rows["good"]["status"] == "pass"  # the other entries are still gated
    assert rows["dup"]["status"] == "error" and rows["dup"]["drop"] is None
    assert "r.dup.json:10: models[1].quant_accuracy_budget_plcc" in rows["dup"]["reason"]
    assert "repeated (first at line 8)" in rows["dup"]["reason"]
    proc = run_cli("validate", "--registry", reg, "--quick", cwd=zoo)
    assert proc.returncode == 2
    assert "r.dup.json:10: models[1].quant_accuracy_budget_plcc: the key 'quant_accuracy_budget_plcc' is repeated" in (
        proc.stderr
    )


def test_a_repeated_models_key_refuses_the_registry_in_one_line(zoo):
    reg = zoo / "r.dup2.json"
    reg.write_text('{"models": [],\n "models": [{"id": "good", "onnx": "good.onnx", "quant_mode": "dynamic"}]}\n')
    assert_one_line_error(run_cli("gate", "--registry", reg, cwd=zoo), "r.dup2.json:2:2", "'models' is repeated")


def test_a_results_document_with_a_repeated_key_is_refused_by_comment(zoo, tmp_path):
    good = tmp_path / "r.json"
    reg = write_registry(zoo / "r.dup3.json", [{"id": "good", "onnx": "good.onnx", "quant_mode": "dynamic"}])
    assert run_cli("gate", "--registry", reg, "--samples", "32", "--json-out", good, cwd=zoo).returncode == 0
    text = good.read_text().replace('"verdict": "pass",', '"verdict": "pass",\n  "verdict": "fail",', 1)
    bad = tmp_path / "r.bad.json"
    bad.write_text(text)
    proc = run_cli("comment", "--results", bad, "--mode", "off", "--body-out", tmp_path / "b.md", cwd=tmp_path)
    assert_one_line_error(proc, f"{bad}:4:3: verdict: the key 'verdict' is repeated (first at line 3)", "keep one")
    assert not (tmp_path / "b.md").exists()


# --- the memory a calibration set asks for ----------------------------------------------------


def test_ptq_static_calibrates_a_large_set_in_bounded_memory(tmp_path):
    """60,000 samples of 8 floats (1.9 MB): ONNX Runtime's calibrator alone holds a few hundred
    times that (it fails, or aborts, under 256 MB of RLIMIT_DATA); in chunks it runs there."""
    (tmp_path / ".git").mkdir()
    fp32 = modelzoo.mlp(tmp_path, name="m")
    x = np.random.default_rng(0).random((60_000, 1, 8), dtype=np.float32)
    modelzoo.write_npz(tmp_path / "cal.npz", x=x)
    proc = subprocess.run(
        [sys.executable, "-m", "quantgate", "ptq-static", str(fp32), "-c", str(tmp_path / "cal.npz")],
        preexec_fn=hostile.limit_data(256 << 20),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.int8.onnx").is_file()


def test_a_calibration_set_that_does_not_fit_in_memory_is_one_line(tmp_path):
    """A 300 MiB set (within QUANTGATE_MAX_ARRAY_BYTES; a 300 KB file of zeros on disk) where the
    process may use 200 MB: numpy cannot allocate it, and that is one line, not a crash."""
    (tmp_path / ".git").mkdir()
    fp32 = modelzoo.mlp(tmp_path, name="m")
    cal = hostile.zip_bomb_npz(tmp_path / "cal.npz", mib=300)
    proc = subprocess.run(
        [sys.executable, "-m", "quantgate", "ptq-static", str(fp32), "-c", str(cal)],
        preexec_fn=hostile.limit_data(200 << 20),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert_one_line_error(proc, str(cal), "do not fit in the memory")
    assert not (tmp_path / "m.int8.onnx").exists()


def test_chunked_calibration_writes_the_file_one_pass_writes(tmp_path, monkeypatch):
    """Same bytes whether the calibrator sees 200 samples at once or in chunks of 7 (the last one
    cut short): the chunks' ranges merge into the one-pass range exactly."""
    from quantgate.produce import static

    fp32 = modelzoo.conv_symbolic(tmp_path)
    cal = {"image": np.random.default_rng(1).normal(size=(200, 1, 1, 12, 12)).astype(np.float32)}
    digests = []
    for chunk in (10**9, 7):
        monkeypatch.setattr(static, "CALIBRATION_CHUNK", chunk)
        out = tmp_path / f"c{chunk}.int8.onnx"
        static.quantize_static(fp32, cal, out)
        digests.append(_sha(out))
    assert digests[0] == digests[1]


def test_a_histogram_calibration_over_the_limit_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / ".git").mkdir()
    fp32 = modelzoo.conv_symbolic(tmp_path)
    cal = modelzoo.write_npz(tmp_path / "cal.npz", image=np.zeros((64, 1, 1, 16, 16), np.float32))
    env = {"QUANTGATE_MAX_CALIBRATION_BYTES": "100000"}
    proc = run_cli("ptq-static", fp32, "-c", cal, "--method", "entropy", env=env, cwd=tmp_path)
    line = assert_one_line_error(proc, str(cal), "entropy calibration keeps every activation", "over the limit")
    assert "QUANTGATE_MAX_CALIBRATION_BYTES" in line and "--method minmax" in line
    assert not (tmp_path / "conv_symbolic.int8.onnx").exists()
    env["QUANTGATE_MAX_CALIBRATION_BYTES"] = str(1 << 30)  # and under it, the same set calibrates
    assert run_cli("ptq-static", fp32, "-c", cal, "--method", "entropy", env=env, cwd=tmp_path).returncode == 0


# --- all or nothing: sidecar, report, registry -----------------------------------------------


@pytest.fixture
def recorded(tmp_path) -> tuple[Path, Path, Path]:
    """(fp32, its sidecar, a registry recording the sidecar's digest) in a fresh checkout."""
    (tmp_path / ".git").mkdir()
    fp32 = modelzoo.mlp(tmp_path, name="m")
    sidecar = quantize_dynamic(fp32).output
    reg = write_registry(
        tmp_path / "registry.json",
        [{"id": "m", "onnx": "m.onnx", "quant_mode": "dynamic", "int8_sha256": _sha(sidecar)}],
    )
    return fp32, sidecar, reg


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["below a file", "name too long", "inside .git"])
def test_a_report_path_that_cannot_be_written_is_refused_before_any_work(recorded, where):
    fp32, _, reg = recorded
    root = reg.parent
    (root / "afile").write_text("x\n")
    report = {
        "below a file": root / "afile" / "report.json",
        "name too long": root / ("r" * 300 + ".json"),
        "inside .git": root / ".git" / "report.json",
    }[where]
    before = _tree(root)
    args = ["--no-per-channel", "--registry", reg, "--registry-id", "m", "--report-out", report]
    proc = run_cli("ptq-dynamic", fp32, *args, cwd=root)
    assert_one_line_error(proc, "--report-out" if where != "inside .git" else ".git")
    assert _tree(root) == before


@pytest.mark.torch
def test_qat_refuses_a_report_path_that_cannot_be_written_before_it_trains(tmp_path):
    require_module("torch")
    from qat_support import write_case

    cfg = write_case(tmp_path)
    (tmp_path / "afile").write_text("x\n")
    out = tmp_path / "tiny.int8.onnx"
    args = ["--config", cfg, "--output", out, "--smoke", "--report-out", tmp_path / "afile" / "r.json"]
    proc = run_cli("qat", *args, "--keep-fp32", tmp_path / "tiny.onnx", cwd=tmp_path)
    assert_one_line_error(proc, "--report-out", "is a file, not a folder")
    assert not out.exists() and not (tmp_path / "tiny.onnx").exists()


def test_a_report_that_fails_after_the_sidecar_was_written_puts_the_sidecar_back(recorded):
    """/dev/full passes every check (a device is written in place) and fails the write itself, so
    the sidecar (different bytes: per-tensor weights) was already replaced: it must come back."""
    fp32, sidecar, reg = recorded
    root = reg.parent
    before = _tree(root)
    proc = run_cli(
        "ptq-dynamic",
        fp32,
        "--no-per-channel",
        "--registry",
        reg,
        "--registry-id",
        "m",
        "--report-out",
        "/dev/full",
        cwd=root,
    )
    assert_one_line_error(proc, "/dev/full", "cannot be written")
    assert _tree(root) == before  # the old sidecar, the old digest, and no leftover file
    proc = run_cli("ptq-dynamic", fp32, "--no-per-channel", "--registry", reg, "--registry-id", "m", cwd=root)
    assert proc.returncode == 0, proc.stderr  # the same run with a writable report path lands whole
    assert json.loads(reg.read_text())["models"][0]["int8_sha256"] == _sha(sidecar) != before["m.int8.onnx"]


def test_a_registry_that_cannot_be_written_is_refused_before_the_sidecar_is(recorded):
    fp32, _, reg = recorded
    prefix = hostile.mount_namespace()
    require_tool(prefix is not None, "NO mount namespace here (unshare): the read-only registry case did NOT run")
    assert prefix is not None
    root = reg.parent
    ro = root / "ro"
    ro.mkdir()
    # the registry on a tmpfs made read-only once it is copied there (inside the namespace only)
    src = write_registry(root / "r.ro.json", [{"id": "m", "onnx": "../m.onnx", "quant_mode": "dynamic"}])
    inner = ro / "registry.json"
    script = (
        f"mount -t tmpfs -o size=64k quantgate-test {ro} && cp {src} {inner} && mount -o remount,ro {ro} && "
        f"exec {sys.executable} -m quantgate ptq-dynamic {fp32} --no-per-channel --registry {inner} --registry-id m"
    )
    before = _tree(root)
    proc = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, timeout=300, cwd=root)
    assert_one_line_error(proc, "--registry", "read-only file system")
    assert _tree(root) == before


def test_two_producers_recording_into_one_registry_both_land(tmp_path):
    """While this test holds the registry's lock, a producer recording its digest waits (and says
    so); an edit made meanwhile (another producer's) is still there after its own."""
    from quantgate.jsonedit import set_field
    from quantgate.registry_edit import locked

    (tmp_path / ".git").mkdir()
    fp32 = modelzoo.mlp(tmp_path, name="a")
    reg = write_registry(
        tmp_path / "registry.json",
        [
            {"id": "a", "onnx": "a.onnx", "quant_mode": "dynamic"},
            {"id": "b", "onnx": "b.onnx", "quant_mode": "dynamic"},
        ],
    )
    with locked(reg):
        proc = subprocess.Popen(
            [sys.executable, "-m", "quantgate", "ptq-dynamic", str(fp32), "--registry", str(reg), "--registry-id", "a"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        said = threading.Event()

        def watch() -> None:
            for line in proc.stderr:
                if "another quantgate run is editing it; waiting" in line:
                    said.set()

        threading.Thread(target=watch, daemon=True).start()
        assert said.wait(timeout=120), "the producer did not wait for the registry's lock"
        time.sleep(0.2)
        reg.write_text(set_field(reg.read_text(), 1, "int8_sha256", "b" * 64))  # the other producer's edit
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 0
    rows = json.loads(reg.read_text())["models"]
    assert rows[0]["int8_sha256"] == _sha(tmp_path / "a.int8.onnx")
    assert rows[1]["int8_sha256"] == "b" * 64
    assert f"set a.int8_sha256 = {rows[0]['int8_sha256']}" in out
