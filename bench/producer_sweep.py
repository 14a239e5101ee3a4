"""Benchmark: gate drop of each shipped model under each producer setting.

    python bench/producer_sweep.py [--registry model/tiny/registry.json]

For every dynamic/static entry (QAT rows are skipped) it quantises the fp32 model in a scratch
folder with each combination of per-channel, activation/weight types and reduce-range, gates the
result exactly as the registry entry would be gated (same quant_inputs / quant_eval_set), and
prints one drop per setting. Deterministic: the same machine and versions print the same table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from quantgate.errors import UserError
from quantgate.gate import run_gate
from quantgate.produce.config import DYNAMIC_DEFAULT_OPS, QuantConfig
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.produce.static import quantize_static
from quantgate.registry import load_registry

STATIC = [(pc, a, w, rr) for pc in (False, True)
          for a, w, rr in (("quint8", "qint8", False), ("quint8", "qint8", True),
                           ("qint8", "qint8", False), ("quint8", "quint8", False))]
DYNAMIC = [(pc, "quint8", w, rr) for pc in (False, True)
           for w, rr in (("qint8", False), ("qint8", True), ("quint8", False))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default="model/tiny/registry.json")
    args = ap.parse_args()
    reg = load_registry(args.registry)
    print(f"{'model':<18} {'mode':<8} {'per-ch':<6} {'act/weight':<14} {'rr':<5} {'drop':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / ".git").mkdir()
        for e in reg.entries:
            modes = {"static": ["static", "dynamic"], "dynamic": ["dynamic", "static"]}.get(e.mode, [])
            for mode in modes:
                if mode == "static" and e.calibration_path is None:
                    cal = reg.root / "model" / "tiny" / "calibration" / f"{e.id}.npz"
                    if not cal.is_file():
                        continue
                else:
                    cal = e.calibration_path
                for pc, act, wt, rr in (STATIC if mode == "static" else DYNAMIC):
                    src = work / e.onnx_path.name
                    shutil.copy(e.onnx_path, src)
                    cfg = QuantConfig(per_channel=pc, activation_type=act, weight_type=wt, reduce_range=rr,
                                      op_types=None if mode == "static" else DYNAMIC_DEFAULT_OPS)
                    try:
                        if mode == "static":
                            quantize_static(src, cal, config=cfg)
                        else:
                            quantize_dynamic(src, config=cfg)
                    except UserError as err:
                        print(f"{e.id:<18} {mode:<8} {'-':<6} {'-':<14} {'-':<5} {'n/a':>10}  ({str(err)[-60:]})")
                        break
                    row = {k: v for k, v in e.raw.items() if k not in ("sha256", "int8_sha256")}
                    row.update(onnx=src.name, quant_mode="dynamic")
                    if "quant_eval_set" in row:
                        shutil.copy(e.eval_path, work / "eval.npz")
                        row["quant_eval_set"] = "eval.npz"
                    (work / "registry.json").write_text(json.dumps({"models": [row]}))
                    r = run_gate(work / "registry.json", root=work).models[0].to_json()
                    drop = "error" if r["drop"] is None else f"{r['drop']:.6f}"
                    print(f"{e.id:<18} {mode:<8} {str(pc):<6} {act + '/' + wt:<14} {str(rr):<5} {drop:>10}")


if __name__ == "__main__":
    main()
