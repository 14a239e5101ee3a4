"""Peak memory of static-PTQ calibration: ONNX Runtime's calibrator in one pass over the set (its
default: what quantgate did before) against quantgate's MinMax in chunks, on the same calibration
sets of the shipped MLP, each run in a fresh process with the same settings.

    python bench/calibration_memory.py [--samples 20000,100000]

Prints, per set: its size, the interpreter's own footprint (the same imports, no calibration), each
run's peak resident memory and that peak over the set's size, and whether both files hold the
same bytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "model" / "tiny" / "mlp_regressor_v1.onnx"

# Each child reports its peak RSS (ru_maxrss, KiB on Linux) and the file's digest.
CHILD = r"""
import hashlib, json, resource, sys
import numpy as np, onnx
mode, model, cal, out = sys.argv[1:5]
from quantgate.produce import static
if mode != "idle":
    if mode == "onepass":
        static.CALIBRATION_CHUNK = 10**12  # one range over the whole set: ONNX Runtime's own way
    static.quantize_static(model, cal, out)
m = onnx.load(out) if mode != "idle" else None
digest = None
if m is not None:
    del m.metadata_props[:]
    digest = hashlib.sha256(m.SerializeToString()).hexdigest()
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "digest": digest}))
"""


def run(mode: str, cal: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(MODEL), str(cal), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="20000,100000", help="comma-separated set sizes")
    args = ap.parse_args()
    from quantgate.cpu import cpu_info

    print(f"CPU: {cpu_info().get('model')}; model {MODEL.name}; one fresh process per run")
    print(f"{'samples':>8} {'set MB':>7} {'idle MB':>8} {'one pass MB':>12} {'x set':>6} {'chunked MB':>11} "
          f"{'x set':>6}  same bytes")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.samples.split(",")):
            x = np.random.default_rng(0).random((n, 1, 6), dtype=np.float32)
            cal = Path(tmp) / f"cal{n}.npz"
            np.savez(cal, features=x)
            set_mb = x.nbytes / 1e6
            idle = run("idle", cal, Path(tmp) / "none.onnx")
            plain = run("onepass", cal, Path(tmp) / "plain.onnx")
            ours = run("chunked", cal, Path(tmp) / "ours.onnx")
            p_mb, q_mb = plain["peak_kib"] / 1024, ours["peak_kib"] / 1024
            print(
                f"{n:>8} {set_mb:>7.1f} {idle['peak_kib'] / 1024:>8.0f} {p_mb:>12.0f} {p_mb / set_mb:>6.0f} "
                f"{q_mb:>11.0f} {q_mb / set_mb:>6.0f}  {plain['digest'] == ours['digest']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
