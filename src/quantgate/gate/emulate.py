"""Measure models as an AVX2-only x86 CPU computes them, on any x86 machine.

The same gate runs again in a child Python under `qemu-x86_64 -cpu Haswell` (Debian's
qemu-user), whose `cpuid` answers as a Haswell: ONNX Runtime then picks its AVX2 integer
kernels, whose u8 x s8 pair sums saturate where VNNI and AMX do not. Each model is measured at
the sample count the native run settled on, so the two figures are of the same samples.

`python -m quantgate.gate.emulate PLAN.json OUT.json` is the child's side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ..errors import UserError, one_line
from ..results import Row
from .settings import GateSettings

QEMU = "qemu-x86_64"
QEMU_CPU = "Haswell"
TIMEOUT_S = 3600


def qemu_path() -> str:
    """qemu-x86_64, or one line saying how to get it."""
    found = shutil.which(QEMU)
    if found is None:
        raise UserError(f"needs {QEMU} (Debian/Ubuntu: apt-get install qemu-user)", subject="--avx2-check")
    return found


def measure_avx2(plan: list[dict], settings: GateSettings, registry: Path | None, root: Path) -> dict[int, dict]:
    """Rows of the models in `plan` ({"index", "id", "path", "budget", "mode", "samples"}) as
    measured under emulation, by plan index; a model that could not be run there gets
    {"status": "error", "reason": ...}."""
    qemu = qemu_path()
    with tempfile.TemporaryDirectory(prefix="quantgate-avx2-") as tmp:
        plan_file, out_file = Path(tmp) / "plan.json", Path(tmp) / "out.json"
        plan_file.write_text(
            json.dumps(
                {
                    "registry": str(registry) if registry else None,
                    "root": str(root),
                    "models": plan,
                    "seed": settings.seed,
                    "reference_compat": settings.reference_compat,
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
        try:
            proc = subprocess.run(
                [qemu, "-cpu", QEMU_CPU, sys.executable, "-m", "quantgate.gate.emulate", str(plan_file), str(out_file)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                env=env,
                cwd=str(root),
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return {p["index"]: {"status": "error", "reason": f"{QEMU} did not run: {one_line(e, 200)}"} for p in plan}
        if proc.returncode != 0 or not out_file.is_file():
            tail = [ln for ln in proc.stderr.splitlines() if ln.strip() and "TCG doesn't support" not in ln]
            why = one_line(tail[-1] if tail else f"exit code {proc.returncode}", 200)
            return {p["index"]: {"status": "error", "reason": f"the emulated run failed: {why}"} for p in plan}
        rows = json.loads(out_file.read_text())
    return {int(k): v for k, v in rows.items()}


def summary(native: Row, emulated: dict) -> tuple[dict, str | None]:
    """The row's `avx2` block, and a warning when the verdict differs there."""
    block = {
        "cpu": f"{QEMU_CPU} ({QEMU} -cpu {QEMU_CPU})",
        **{k: emulated.get(k) for k in ("status", "drop", "drop_ci", "samples", "reason", "int8_kernels")},
    }
    if emulated.get("status") in (None, "error") or emulated.get("status") == native.status:
        return block, None
    there = emulated.get("drop")
    shown = f" (drop {there:.6f})" if isinstance(there, float) else ""
    return block, (
        f"the verdict differs as an AVX2-only x86 CPU computes it: {native.status} here, "
        f"{emulated['status']} there{shown}; the sidecar's integer kernels compute differently "
        "on CPUs without VNNI"
    )


def _child(plan_path: str, out_path: str) -> int:
    from ..cpu import int8_kernels
    from ..registry import load_registry
    from .run import adhoc_entry, gate_entry

    plan = json.loads(Path(plan_path).read_text())
    root = Path(plan["root"])
    reg = load_registry(plan["registry"], root) if plan["registry"] else None
    kernels = int8_kernels()
    out = {}
    for p in plan["models"]:
        e = reg.get(p["id"]) if p.get("path") is None and reg else adhoc_entry(Path(p["path"]), p["budget"])
        if p.get("mode"):
            e = replace(e, mode=p["mode"])
        settings = GateSettings(samples=p["samples"], seed=plan["seed"], reference_compat=plan["reference_compat"])
        row = gate_entry(e, settings, root, reg.path if reg else None).to_json()
        out[p["index"]] = {
            **{k: row.get(k) for k in ("status", "drop", "drop_ci", "samples", "reason")},
            "int8_kernels": kernels,
        }
    Path(out_path).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2]))
