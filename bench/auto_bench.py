"""Benchmark: what `quantgate auto` picks, and what the search costs.

    python bench/auto_bench.py [--qat] [--out PATH]

In a scratch copy of the shipped examples, every model is onboarded from fp32 (its registry row
set to fp32, its budgets kept) and `quantgate auto` searches it, with the gate's own timing on
(`--bench`, so each candidate carries its int8/fp32 time on this CPU). Two constructed cases
join them:
- `nr_trap`: nr_metric_v1 shipped as a dynamic sidecar (its Gemms in int8, every Conv in float);
- `outlier_layer`: an MLP with one layer of outlier weights (tests/modelzoo.outlier_layer_mlp),
  budget 0.001, which dynamic PTQ misses;
and with `--qat`, `outlier_qat`: outlier_mlp_v1 held to SQNR >= 35.5 dB with every weight in
int8, which only QAT reaches (about 30 s of training).

Printed: a markdown table (the model, the mode it had, what auto chose, its drop and interval,
the sample count, size against fp32, int8/fp32 time at 1 thread and batch 1, the share of
weights in int8, the candidates tried and the search's wall time), with the CPU it ran on.
`--out` also writes the table to a file. Timings are this machine's, under its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def scratch(tmp: Path, qat: bool) -> Path:
    """The shipped examples as fp32 entries, plus the constructed cases; returns the registry."""
    import modelzoo
    from quantgate.produce.dynamic import quantize_dynamic

    (tmp / ".git").mkdir()
    shutil.copytree(REPO / "model" / "tiny", tmp / "model" / "tiny")
    shutil.copytree(REPO / "model" / "qat", tmp / "model" / "qat")
    tiny = tmp / "model" / "tiny"
    reg = tiny / "registry.json"
    doc = json.loads(reg.read_text())
    for m in doc["models"]:
        m["quant_mode"] = "fp32"
        m.pop("int8_sha256", None)
        (tiny / m["onnx"].replace(".onnx", ".int8.onnx")).unlink(missing_ok=True)
    shutil.copy(tiny / "nr_metric_v1.onnx", tiny / "nr_trap.onnx")
    quantize_dynamic(tiny / "nr_trap.onnx")
    doc["models"].append({"id": "nr_trap", "onnx": "nr_trap.onnx", "quant_mode": "dynamic"})
    modelzoo.outlier_layer_mlp(tiny, "outlier_layer")
    doc["models"].append({"id": "outlier_layer", "onnx": "outlier_layer.onnx", "quant_accuracy_budget_plcc": 0.001})
    if qat:
        shutil.copy(tiny / "outlier_mlp_v1.onnx", tiny / "outlier_qat.onnx")
        doc["models"].append(
            {
                "id": "outlier_qat",
                "onnx": "outlier_qat.onnx",
                "quant_accuracy_budget_sqnr_db": 35.5,
                "quant_min_int8_weight_share": 1.0,
                "quant_qat_config": "model/qat/outlier_mlp_v1.yaml",
            }
        )
    reg.write_text(json.dumps(doc, indent=2) + "\n")
    return reg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qat", action="store_true", help="also the case only QAT fits (needs torch)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()

    from quantgate.auto.search import Search
    from quantgate.cpu import cpu_info, int8_kernels
    from quantgate.gate.settings import GateSettings
    from quantgate.registry import load_registry

    cpu = cpu_info()
    lines = [
        f"CPU: {cpu['model']} ({cpu['logical_cores']} logical cores); int8 kernels: {int8_kernels()['family']}",
        "",
        "| model | was | auto chose | settings | drop (95% interval) | n | size | int8/fp32 time | int8 weights | "
        "candidates | search s |",
        "|---|---|---|---|---|--:|--:|--:|--:|---|--:|",
    ]
    with tempfile.TemporaryDirectory(prefix="quantgate-auto-bench-") as tmp:
        reg = load_registry(scratch(Path(tmp), args.qat))
        for e in reg.entries:
            t0 = time.perf_counter()
            search = Search(e, reg.path, reg.root, settings=GateSettings(bench=True))
            o = search.run()
            search.close()
            seconds = time.perf_counter() - t0
            tried = ", ".join(f"{t.candidate.name} {t.status}" for t in o.tried)
            c = o.chosen
            if c is None or c.row is None:
                lines.append(
                    f"| {e.id} | {e.mode} | fp32 | {o.decision} | — | — | — | — | — | {tried} | {seconds:.1f} |"
                )
                continue
            r = c.row
            ci = f" ({r.drop_ci.low:.6f}–{r.drop_ci.high:.6f})" if r.drop_ci else ""
            share = c.coverage.int8_share if c.coverage else None
            lines.append(
                f"| {e.id} | {e.mode} | {c.candidate.name} | {c.candidate.settings()} | {r.drop:.6f}{ci} | {r.samples} "
                f"| ×{c.size_ratio:.2f} | {'—' if c.speed_ratio is None else f'{c.speed_ratio:.2f}×'} "
                f"| {'—' if share is None else f'{share:.0%}'} | {tried} | {seconds:.1f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
