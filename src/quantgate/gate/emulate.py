"""Measure models as an AVX2-only x86 CPU computes them, on any x86 machine.

The int8 side runs again in a child Python under `qemu-x86_64 -cpu Haswell` (Debian's
qemu-user), whose `cpuid` answers as a Haswell: ONNX Runtime then picks its AVX2 integer
kernels, whose u8 x s8 pair sums saturate where VNNI and AMX do not. The child draws the same
samples (the same plans and seed, or the same eval set) at the count the native run settled on
and hands its int8 outputs back; the fp32 side and the figures are computed natively (fp32
kernels under emulation are some 1,000 times slower and compute the same).

`python -m quantgate.gate.emulate PLAN.json OUT_DIR` is the child's side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, one_line
from ..results import Row
from ..rowblocks import Avx2Check

QEMU = "qemu-x86_64"
QEMU_CPU = "Haswell"
TIMEOUT_S = 3600


def qemu_path() -> str:
    """qemu-x86_64, or one line saying how to get it."""
    found = shutil.which(QEMU)
    if found is None:
        raise UserError(
            f"needs {QEMU}, which is not on PATH",
            subject="--avx2-check",
            fix="install qemu-user (Debian/Ubuntu: apt-get install qemu-user), or leave the check out",
        )
    return found


def int8_outputs(plan: list[dict]) -> tuple[dict[int, dict[str, list[np.ndarray]] | str], dict]:
    """Run the int8 side of every model in `plan` under emulation. Returns, by plan index, the
    outputs (name -> one flat array per sample) or why they could not be had; and the int8 kernel family
    the emulated CPU used."""
    qemu = qemu_path()
    with tempfile.TemporaryDirectory(prefix="quantgate-avx2-") as tmp:
        plan_file, out_dir = Path(tmp) / "plan.json", Path(tmp) / "out"
        out_dir.mkdir()
        plan_file.write_text(json.dumps(plan))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
        cmd = [qemu, "-cpu", QEMU_CPU, sys.executable, "-m", "quantgate.gate.emulate", str(plan_file), str(out_dir)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"{QEMU} did not run: {one_line(e, 200)}"
            return {p["index"]: why for p in plan}, {}
        summary_file = out_dir / "summary.json"
        if proc.returncode != 0 or not summary_file.is_file():
            tail = [ln for ln in proc.stderr.splitlines() if ln.strip() and "TCG doesn't support" not in ln]
            why = f"the emulated run failed: {one_line(tail[-1] if tail else f'exit code {proc.returncode}', 200)}"
            return {p["index"]: why for p in plan}, {}
        summary = json.loads(summary_file.read_text())
        found: dict[int, dict[str, list[np.ndarray]] | str] = {}
        for p in plan:
            i = p["index"]
            err = summary["errors"].get(str(i))
            if err:
                found[i] = err
            else:
                with np.load(out_dir / f"{i}.npz", allow_pickle=False) as z:
                    found[i] = {n: np.split(z[f"o{k}"], np.cumsum(z[f"n{k}"])[:-1]) for k, n in enumerate(p["names"])}
    return found, summary["int8_kernels"]


def summary(native: Row, emulated: Row, kernels: dict) -> tuple[Avx2Check, str | None]:
    """The row's `avx2` block, and a warning when the verdict differs there."""
    block = Avx2Check(
        cpu=f"{QEMU_CPU} ({QEMU} -cpu {QEMU_CPU})",
        status=emulated.status,
        drop=emulated.drop,
        drop_ci=emulated.drop_ci,
        samples=emulated.samples,
        reason=emulated.reason,
        int8_kernels=kernels,
    )
    if emulated.status == "error" or emulated.status == native.status:
        return block, None
    shown = f" (drop {emulated.drop:.6f})" if emulated.drop is not None else ""
    return block, (
        f"the verdict differs as an AVX2-only x86 CPU computes it: {native.status} here, "
        f"{emulated.status} there{shown}; the sidecar's integer kernels compute differently "
        "on CPUs without VNNI"
    )


def _child(plan_path: str, out_dir: str) -> int:
    """Under emulation: run each model's int8 side on its samples and save the outputs."""
    from .. import sampleset as cal
    from ..cpu import int8_kernels
    from ..inputs import stream
    from ..onnxio import session, sig_from_session
    from ..rowblocks import InputPlan

    out = Path(out_dir)
    errors: dict[str, str] = {}
    for p in json.loads(Path(plan_path).read_text()):
        try:
            sess = session(p["int8"], label=p["int8"])
            if p["feeds"]["kind"] == "eval":
                ins = [s for s in sig_from_session(sess)[0] if s.name in p["feeds"]["inputs"]]
                feeds = cal.feeds(cal.read_npz(p["feeds"]["path"]), ins)
            else:
                plans = [InputPlan(**{**d, "shape": tuple(d["shape"])}) for d in p["feeds"]["plans"]]
                feeds = stream(plans, p["seed"])
            got: list[list[np.ndarray]] = [[] for _ in p["names"]]
            for _, feed in zip(range(p["samples"]), feeds, strict=False):
                for k, y in enumerate(sess.run(p["names"], feed)):
                    got[k].append(np.asarray(y))
            # every output flattened, with each sample's length: an output's length may vary by sample
            stacked: dict[str, Any] = {}
            for k, v in enumerate(got):
                stacked[f"o{k}"] = np.concatenate([a.ravel() for a in v]) if v else np.zeros(0)
                stacked[f"n{k}"] = np.array([a.size for a in v], np.int64)
            np.savez(out / f"{p['index']}.npz", **stacked)
        except Exception as e:  # one model that cannot run does not stop the others
            errors[str(p["index"])] = f"the emulated int8 run failed: {one_line(e, 200)}"
    (out / "summary.json").write_text(json.dumps({"errors": errors, "int8_kernels": int8_kernels()}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2]))
