"""Benchmark: the gate's drop of each shipped model under each producer setting, on this CPU and
as an AVX2-only x86 CPU computes it.

    python bench/producer_sweep.py [--registry model/tiny/registry.json] [--no-avx2] [--seed 0]

Every static and QAT entry is quantised statically, and the dynamic entry dynamically, with each
combination of per-channel, activation/weight types and 7-bit weights (`reduce_range`), in a
scratch folder. All candidates are gated in one run exactly as their registry entry would be
(same quant_inputs / quant_eval_set, the gate's default adaptive sampling); with qemu-user
installed the same run measures each candidate again under `qemu-x86_64 -cpu Haswell` on the
same samples. Each drop is printed with its 95 % interval and sample count; "same" says
whether the verdict is the same on both CPUs. Deterministic for a given seed, machine kind and
versions (the time cap aside, which these small models never reach).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from quantgate.cpu import cpu_info, int8_kernels
from quantgate.errors import UserError
from quantgate.gate import run_gate
from quantgate.produce.config import DYNAMIC_DEFAULT_OPS, QuantConfig
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.produce.static import quantize_static
from quantgate.registry import load_registry

# (per-channel, activations, weights, 7-bit weights)
STATIC = [
    (pc, a, w, rr)
    for pc in (False, True)
    for a, w, rr in (
        ("quint8", "qint8", False),
        ("quint8", "qint8", True),
        ("quint8", "quint8", False),
        ("qint8", "qint8", False),
    )
]
DYNAMIC = [
    (pc, "quint8", w, rr) for pc in (False, True) for w, rr in (("qint8", False), ("qint8", True), ("quint8", False))
]
SHORT = {"quint8": "u8", "qint8": "s8"}


def label(pc: bool, act: str, wt: str, rr: bool) -> str:
    return f"{'per-channel' if pc else 'per-tensor'} {SHORT[act]}x{SHORT[wt]}{' 7-bit' if rr else ''}"


def candidates(reg, work: Path) -> list[tuple[str, dict]]:
    """Produce every candidate sidecar; return (label, registry row) pairs."""
    rows = []
    for e in reg.entries:
        mode = {"static": "static", "qat": "static", "dynamic": "dynamic"}.get(e.mode)
        if mode is None:
            continue
        for i, (pc, act, wt, rr) in enumerate(STATIC if mode == "static" else DYNAMIC):
            stem = f"{e.id}__{i}"
            src = work / f"{stem}.onnx"
            shutil.copy(e.onnx_path, src)
            cfg = QuantConfig(
                per_channel=pc,
                activation_type=act,
                weight_type=wt,
                reduce_range=rr,
                op_types=None if mode == "static" else DYNAMIC_DEFAULT_OPS,
            )
            try:
                if mode == "static":
                    quantize_static(src, e.calibration_path, config=cfg)
                else:
                    quantize_dynamic(src, config=cfg)
            except UserError as err:
                print(f"{e.id}: {label(pc, act, wt, rr)}: not produced ({str(err)[-80:]})")
                continue
            row = {k: v for k, v in e.raw.items() if k not in ("sha256", "int8_sha256")}
            row.update(id=stem, onnx=src.name, quant_mode="dynamic" if mode == "dynamic" else "static")
            row.setdefault("quant_calibration_set", "unused.npz")
            if "quant_eval_set" in row:
                shutil.copy(e.eval_path, work / f"{stem}.eval.npz")
                row["quant_eval_set"] = f"{stem}.eval.npz"
            rows.append((f"{e.id:<18} {mode:<8} {label(pc, act, wt, rr):<27}", row))
    return rows


def fmt(drop, ci, n) -> str:
    if drop is None:
        return f"{'error':>34}"
    shown = f"[{ci[0]:.5f}, {ci[1]:.5f}]" if ci else "[-]"
    return f"{drop:>9.6f} {shown:<20} {n:>5}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default="model/tiny/registry.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-avx2", action="store_true", help="Skip the emulated AVX2 measurement.")
    args = ap.parse_args()
    reg = load_registry(args.registry)
    cpu = cpu_info()
    print(f"# CPU: {cpu['model']} ({', '.join(cpu['int8_features'])}); int8 kernels here: {int8_kernels()['family']}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / ".git").mkdir()
        rows = candidates(reg, work)
        (work / "registry.json").write_text(json.dumps({"models": [r for _, r in rows]}))
        results = run_gate(work / "registry.json", root=work, seed=args.seed, avx2_check=not args.no_avx2)
    head = f"{'model':<18} {'mode':<8} {'setting':<27} {'drop here':>9} {'95% interval':<20} {'n':>5}"
    print(head + ("" if args.no_avx2 else f"   {'drop AVX2':>9} {'95% interval':<20} {'n':>5}  same"))
    for (name, _), r in zip(rows, results.models, strict=True):
        here = fmt(r.drop, r.drop_ci.to_json() if r.drop_ci else None, r.samples)
        line = f"{name} {here}"
        if not args.no_avx2:
            a = r.avx2.to_json() if r.avx2 else {}
            line += (
                f"   {fmt(a.get('drop'), a.get('drop_ci'), a.get('samples'))}  "
                f"{'yes' if a.get('status') == r.status else 'NO'}"
            )
        print(line)


if __name__ == "__main__":
    main()
