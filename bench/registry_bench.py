"""Benchmark: how long `load_registry` takes as a registry grows.

    python bench/registry_bench.py [--entries 1000,4000,16000] [--invalid-every 7]

Each registry is generated in a temporary repository: N dynamic entries sharing one model file,
indented as `json.dumps(..., indent=2)` writes it; with `--invalid-every K`, every K-th entry has
a budget of 1.5 (a schema problem, so the problem path of the loader is timed too). Best of three
runs per size, in this process; the registry bounds (`quantgate.limits`) are raised to fit. Run it
with PYTHONPATH pointing at another source tree to time that one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from quantgate.registry import load_registry


def write(d: Path, n: int, invalid_every: int) -> Path:
    (d / ".git").mkdir()
    (d / "m.onnx").write_bytes(b"x")
    models = [
        {
            "id": f"model_{i:06d}",
            "onnx": "m.onnx",
            "quant_mode": "dynamic",
            "quant_accuracy_budget_plcc": 1.5 if invalid_every and i % invalid_every == 0 else 0.01,
        }
        for i in range(n)
    ]
    path = d / "registry.json"
    path.write_text(json.dumps({"schema_version": 1, "models": models}, indent=2) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", default="1000,4000,16000")
    ap.add_argument("--invalid-every", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(x) for x in args.entries.split(",")]
    try:  # the bounds exist from the bounded-input work on; the bench times loading, not refusing
        from quantgate import limits

        limits.MAX_REGISTRY_ENTRIES = max(limits.MAX_REGISTRY_ENTRIES, *sizes)
        limits.MAX_REGISTRY_BYTES = max(limits.MAX_REGISTRY_BYTES, 200 * max(sizes))
    except ImportError:
        pass
    from quantgate.cpu import cpu_info, int8_kernels

    print(
        f"# CPU: {cpu_info()['model']} ({cpu_info()['logical_cores']} logical cores); "
        f"int8 kernels: {int8_kernels()['family']}"
    )
    print(f"{'entries':>8} {'MB':>6} {'problems':>8} {'load s':>8}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = write(Path(tmp), n, args.invalid_every)
            best, problems = float("inf"), 0
            for _ in range(args.repeat):
                t = time.perf_counter()
                reg = load_registry(path)
                best = min(best, time.perf_counter() - t)
                problems = len(reg.problems)
            print(f"{n:8d} {path.stat().st_size / 1e6:6.1f} {problems:8d} {best:8.2f}")


if __name__ == "__main__":
    main()
