"""Robustness run: every single-operator model of the onnx package's backend test cases through
the producers and the gate, counting how each ends; with --tests, the size of the hostile-input
corpus of the test suite instead (the cases docs/cli.md counts, file by file).

    python bench/hostile_corpus.py [--limit N] [--show-bugs]
    python bench/hostile_corpus.py --tests

Each model is (1) quantised dynamically with a broad op list, (2) quantised statically on a
two-sample calibration set drawn by the gate's own input rules, and (3) gated against a copy of
itself (or its int8 file when one was produced). An outcome is `ok`, `refused` (a one-line
`UserError`, exit 2 for a user) or `BUG` (any other exception: a traceback for a user). The
expected figure for BUG is 0; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx

from quantgate.errors import UserError, one_line
from quantgate.gate import run_gate
from quantgate.inputs import draw, plan_inputs
from quantgate.onnxio import graph_inputs
from quantgate.produce.config import QuantConfig
from quantgate.produce.dynamic import quantize_dynamic
from quantgate.produce.static import quantize_static

BROAD_OPS = (
    "MatMul",
    "Gemm",
    "Conv",
    "ConvTranspose",
    "Gather",
    "Attention",
    "LSTM",
    "Transpose",
    "Relu",
    "Add",
    "Mul",
    "Softmax",
    "AveragePool",
    "MaxPool",
    "Resize",
    "Concat",
)


REPO = Path(__file__).resolve().parents[1]
# The test files of the hostile-input corpus, as docs/cli.md lists them.
CORPUS_TESTS = (
    "tests/cli/test_hostile_cli.py",
    "tests/cli/test_hostile_action_cli.py",
    "tests/cli/test_hostile_files_cli.py",
    "tests/cli/test_bounded_input_cli.py",
    "tests/unit/test_bounded_input.py",
    "tests/unit/test_hostile_parts.py",
)


def count_tests() -> dict[str, int]:
    """Cases per corpus file, as pytest collects them (each parametrised case counts once)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *CORPUS_TESTS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = collections.Counter(ln.split("::", 1)[0] for ln in proc.stdout.splitlines() if "::" in ln)
    return {f: counts[f] for f in CORPUS_TESTS}


def _step(fn):
    try:
        fn()
        return "ok", None
    except UserError as e:
        return "refused", str(e)
    except Exception as e:
        return "BUG", f"{type(e).__name__}: {one_line(e, 200)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--show-bugs", action="store_true", help="print every BUG line")
    ap.add_argument("--tests", action="store_true", help="count the hostile-input test cases instead")
    args = ap.parse_args()
    if args.tests:
        counts = count_tests()
        for f, n in counts.items():
            print(f"{f}: {n} cases")
        print(f"total: {sum(counts.values())} cases")
        return 0
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

    cases = collect_testcases()
    if args.limit:
        cases = cases[: args.limit]
    tally = {k: collections.Counter() for k in ("dynamic", "static", "gate")}
    bugs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        for case in cases:
            d = root / case.name
            d.mkdir()
            src = d / "m.onnx"
            onnx.save(case.model, str(src))
            cfg = QuantConfig(per_channel=True, weight_type="quint8", op_types=BROAD_OPS)
            out, why = _step(lambda: quantize_dynamic(src, d / "dyn.onnx", config=cfg))
            tally["dynamic"][out] += 1
            if out == "BUG":
                bugs.append(("dynamic", case.name, why))

            def static():
                ins = graph_inputs(onnx.load(str(src)), src)
                feeds = draw(plan_inputs(ins), 2, 0)
                cal = {k: np.stack([f[k] for f in feeds]) for k in feeds[0]}
                quantize_static(src, cal, d / "sta.onnx")

            out, why = _step(static)
            tally["static"][out] += 1
            if out == "BUG":
                bugs.append(("static", case.name, why))
            sidecar = d / "m.int8.onnx"
            shutil.copy(d / "dyn.onnx" if (d / "dyn.onnx").is_file() else src, sidecar)
            (d / "registry.json").write_text(
                json.dumps({"models": [{"id": case.name, "onnx": "m.onnx", "quant_mode": "dynamic"}]})
            )

            def gate():
                row = run_gate(d / "registry.json", root=root, samples=2).models[0].to_json()
                if row["status"] == "error" and row["reason"].startswith("unexpected "):
                    raise RuntimeError(row["reason"])
                if row["status"] == "error":  # an error row with its reason: what a user sees
                    raise UserError(row["reason"])

            out, why = _step(gate)
            tally["gate"][out] += 1
            if out == "BUG":
                bugs.append(("gate", case.name, why))
            shutil.rmtree(d)
    from quantgate.cpu import cpu_info, int8_kernels

    print(
        f"# CPU: {cpu_info()['model']} ({cpu_info()['logical_cores']} logical cores); "
        f"int8 kernels: {int8_kernels()['family']}"
    )
    print(f"{len(cases)} single-operator models (onnx {onnx.__version__} backend test cases)")
    for step, c in tally.items():
        print(f"  {step:<8} ok={c['ok']:5d} refused={c['refused']:5d} BUG={c['BUG']:3d}")
    print("  (gate: ok = measured, pass or fail; refused = an error row with its reason, one line)")
    for b in bugs if args.show_bugs else bugs[:10]:
        print("  BUG", *b)
    return 1 if bugs else 0


if __name__ == "__main__":
    raise SystemExit(main())
