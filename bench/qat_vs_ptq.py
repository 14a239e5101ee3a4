"""Static PTQ vs QAT on the shipped QAT configs, on the gate's own evaluation inputs.

    python bench/qat_vs_ptq.py                       # every model/qat/*.yaml
    python bench/qat_vs_ptq.py model/qat/outlier_mlp_v1.yaml --epochs-qat 5

For each config, one `run_qat` run keeps the fp32 warm-start export (the model plain training
gives), the QAT-conditioned fp32 export, the int8 sidecar and the calibration set. Then:

- ptq:       warm fp32 vs its static-PTQ sidecar with the project's default static preset
             (what `quantgate ptq-static` writes), same calibration set;
- ptq*:      the same with the QAT run's own PTQ settings (7-bit weights by default): isolates
             what the training changed;
- qat:       warm fp32 vs the QAT sidecar: what a `quant_mode: qat` row shipping the warm-start
             fp32 model is gated on (QAT distils toward those outputs by default);
- qat/cond:  QAT-conditioned fp32 vs the QAT sidecar;
- val losses: warm fp32 and conditioned fp32 on the held-out split (the task did not get worse);
- time ratio: (fp32 + QAT training seconds) / fp32 training seconds.

Every drop is measured by `quantgate.gate.gate_entry` with the gate's default adaptive sampling
and seed 0, using the registry row's `quant_inputs` and `quant_eval_set` when
model/tiny/registry.json lists the id: the same evaluation inputs the gate uses for the shipped
files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gate_drop(fp32: Path, int8: Path, input_spec: dict, budget: float, eval_path: Path | None) -> float | None:
    from quantgate.gate import GateSettings, gate_entry
    from quantgate.registry import Entry

    if int8 != fp32.with_name(fp32.stem + ".int8.onnx"):
        raise ValueError("int8 must sit beside fp32 as <stem>.int8.onnx")
    raw = {"quant_eval_set": str(eval_path)} if eval_path else {}
    # mode "qat": the pairs compared here are made from different fp32 files on purpose (warm vs
    # QAT sidecar), which the gate's stale-sidecar check would refuse for a PTQ row.
    e = Entry(
        index=-1,
        raw=raw,
        id=fp32.stem,
        mode="qat",
        budget=budget,
        onnx_path=fp32,
        int8_path=int8,
        input_spec=input_spec,
        eval_path=eval_path,
    )
    row = gate_entry(e, GateSettings())
    if row.status == "error":
        raise RuntimeError(f"{fp32}: {row.reason}")
    return row.drop


def registry_rows() -> dict:
    p = ROOT / "model" / "tiny" / "registry.json"
    try:
        return {r["id"]: r for r in json.loads(p.read_text())["models"]}
    except (OSError, ValueError, KeyError):
        return {}


def bench(config: Path, overrides: dict, work: Path) -> dict:
    from quantgate.produce.static import quantize_static
    from quantgate.qat import run_qat
    from quantgate.qat.config import load_config
    from quantgate.qat.pipeline import ptq_config

    mid = config.stem
    row = registry_rows().get(mid, {})
    spec = row.get("quant_inputs", {})
    budget = row.get("quant_accuracy_budget_plcc", 0.01)
    eval_path = ROOT / row["quant_eval_set"] if row.get("quant_eval_set") else None
    d = work / mid
    for sub in ("warm", "warm_star", "cond", "cross"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    r = run_qat(
        config=config,
        output=d / "cond" / "m.int8.onnx",
        keep_fp32=d / "cond" / "m.onnx",
        keep_warm_fp32=d / "warm" / "m.onnx",
        keep_calibration=d / "cal.npz",
        **overrides,
    )
    quantize_static(d / "warm" / "m.onnx", d / "cal.npz", d / "warm" / "m.int8.onnx")
    shutil.copy(d / "warm" / "m.onnx", d / "warm_star" / "m.onnx")
    quantize_static(
        d / "warm_star" / "m.onnx",
        d / "cal.npz",
        d / "warm_star" / "m.int8.onnx",
        config=ptq_config(load_config(config).with_overrides(**overrides)),
    )
    shutil.copy(d / "warm" / "m.onnx", d / "cross" / "m.onnx")
    shutil.copy(d / "cond" / "m.int8.onnx", d / "cross" / "m.int8.onnx")
    drops = {
        k: gate_drop(d / k / "m.onnx", d / k / "m.int8.onnx", spec, budget, eval_path)
        for k in ("warm", "warm_star", "cond", "cross")
    }
    return {
        "id": mid,
        "params": r.parameter_count,
        "budget": budget,
        "ptq": drops["warm"],
        "ptq_star": drops["warm_star"],
        "qat": drops["cross"],
        "qat_cond": drops["cond"],
        "val_warm": r.losses["fp32_val"],
        "val_cond": r.losses["conditioned_fp32_val"],
        "fp32_s": r.seconds["fp32"],
        "qat_s": r.seconds["qat"],
        "ratio": r.training_time_ratio,
    }


def _torch_version() -> str:
    import torch

    return torch.__version__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="*", type=Path)
    ap.add_argument("--epochs-fp32", type=int)
    ap.add_argument("--epochs-qat", type=int)
    ap.add_argument("--exporter", choices=["torchscript", "dynamo"], help="override every config's qat.exporter")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    a = ap.parse_args(argv)
    configs = a.configs or sorted((ROOT / "model" / "qat").glob("*.yaml"))
    overrides = {
        k: v
        for k, v in (("epochs_fp32", a.epochs_fp32), ("epochs_qat", a.epochs_qat), ("exporter", a.exporter))
        if v is not None
    }
    rows = []
    head = (
        f"{'model':<18} {'params':>6} {'budget':>6} {'ptq':>9} {'ptq*':>9} {'qat':>9} {'qat/cond':>9} "
        f"{'val warm':>9} {'val qat':>9} {'fp32 s':>7} {'qat s':>7} {'ratio':>6}"
    )
    from quantgate.cpu import cpu_info, int8_kernels

    print(
        f"# CPU: {cpu_info()['model']} ({cpu_info()['logical_cores']} logical cores); "
        f"int8 kernels: {int8_kernels()['family']}; torch {_torch_version()}"
    )
    print(head)
    with tempfile.TemporaryDirectory(prefix="quantgate-bench-") as tmp:
        for c in configs:
            r = bench(c, overrides, Path(tmp))
            rows.append(r)

            def f(v):
                return f"{v:9.6f}" if v is not None else f"{'-':>9}"

            print(
                f"{r['id']:<18} {r['params']:>6} {r['budget']:>6g} {f(r['ptq'])} {f(r['ptq_star'])} {f(r['qat'])} "
                f"{f(r['qat_cond'])} {r['val_warm']:9.5f} {r['val_cond']:9.5f} {r['fp32_s']:7.1f} "
                f"{r['qat_s']:7.1f} {r['ratio'] or float('nan'):6.2f}",
                flush=True,
            )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
