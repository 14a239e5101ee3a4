"""Benchmark: producer and gate cost against plain onnxruntime calls as models grow.

    python bench/scale_bench.py [--sizes 256,1024,3072]

For an MLP of each hidden width (tests/modelzoo.big_mlp, 1024 -> W -> W -> 1024), each step runs
in a fresh subprocess so peak memory (max RSS) is its own:
- `plain q`: onnxruntime.quantization.quantize_dynamic alone (MatMul, per-channel, u8 weights);
- `qg q`: quantgate's ptq-dynamic with the same settings (pre-flight, scratch folder, reload and
  run of the result, atomic write, report);
- `qg gate`: quantgate measuring fp32 vs int8 (16 samples, every figure).
Ratios compare quantgate with the plain call on the same machine and model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

STEP = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
step, d = sys.argv[1], Path(sys.argv[2])
src = d / "big_mlp.onnx"
t = time.perf_counter()
if step == "plain":
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(src), str(d / "plain.onnx"), op_types_to_quantize=["MatMul", "Gemm"],
                     per_channel=True, weight_type=QuantType.QUInt8)
elif step == "quantgate":
    from quantgate.produce.dynamic import quantize_dynamic
    quantize_dynamic(src)
else:
    from quantgate.gate import run_gate
    assert run_gate(d / "registry.json").models[0].status == "pass"
print(json.dumps({{"s": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run(step: str, d: Path) -> dict:
    code = STEP.format(tests=str(HERE.parent / "tests"))
    out = subprocess.run([sys.executable, "-c", code, step, str(d)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,1024,3072")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent / "tests"))
    import modelzoo
    from quantgate.cpu import cpu_info, int8_kernels

    print(
        f"# CPU: {cpu_info()['model']} ({cpu_info()['logical_cores']} logical cores); "
        f"int8 kernels: {int8_kernels()['family']}"
    )
    print(
        f"{'fp32 MB':>8} {'plain q s':>9} {'qg q s':>7} {'ratio':>6} {'plain MB':>9} {'qg MB':>7} "
        f"{'gate s':>7} {'gate MB':>8}"
    )
    for w in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / ".git").mkdir()
            src = modelzoo.big_mlp(d, sizes=(1024, w, w, 1024))
            (d / "registry.json").write_text(
                json.dumps({"models": [{"id": "big", "onnx": src.name, "quant_mode": "dynamic"}]})
            )
            plain, qg = run("plain", d), run("quantgate", d)
            gate = run("gate", d)
            print(
                f"{src.stat().st_size / 1e6:8.1f} {plain['s']:9.2f} {qg['s']:7.2f} {qg['s'] / plain['s']:6.2f} "
                f"{plain['rss_mb']:9.0f} {qg['rss_mb']:7.0f} {gate['s']:7.2f} {gate['rss_mb']:8.0f}"
            )


if __name__ == "__main__":
    main()
