"""Benchmark: how much the gate's drop moves with the seed, at 16 samples and at the default.

    python bench/seed_spread.py [--registry model/tiny/registry.json] [--seeds 20]

For every drawn (not eval-set) model of the registry, the gate runs once per seed at 16 samples
(the old default, the first user's method) and once per seed at the default adaptive sampling.
Printed per model: the range and standard deviation of the drop over the seeds, both as figures
and as a share of the budget, the spread cut (16-sample std / default std), the sample counts
the default settled on, and the gate's median time per model at the default (wall clock on this
machine: a comparison, not a promise).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from quantgate.cpu import cpu_info, int8_kernels
from quantgate.gate import run_gate
from quantgate.registry import load_registry


def spread(registry: str, ids: list[str], seeds: int, **kw) -> tuple[dict, dict, dict]:
    drops: dict[str, list[float]] = {i: [] for i in ids}
    samples: dict[str, list[int]] = {i: [] for i in ids}
    seconds: dict[str, list[float]] = {i: [] for i in ids}
    for s in range(seeds):
        for i in ids:
            t = time.perf_counter()
            row = run_gate(registry, [i], seed=s, **kw).models[0]
            seconds[i].append(time.perf_counter() - t)
            drops[i].append(row.drop if row.drop is not None else float("nan"))
            samples[i].append(row.samples or 0)
    return drops, samples, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default="model/tiny/registry.json")
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    reg = load_registry(args.registry)
    ids = [e.id for e in reg.entries if e.mode != "fp32" and e.eval_path is None]
    budgets = {e.id: e.budget for e in reg.entries}
    cpu = cpu_info()
    print(f"# CPU: {cpu['model']}; int8 kernels: {int8_kernels()['family']}; seeds 0..{args.seeds - 1}")
    d16, _, _ = spread(args.registry, ids, args.seeds, samples=16)
    dd, nd, sd = spread(args.registry, ids, args.seeds)
    print(
        f"{'model':<18} {'setting':<8} {'drop min':>10} {'drop max':>10} {'range':>10} {'std':>10} "
        f"{'std/budget':>10} {'cut':>6} {'samples':>11} {'s/model':>8}"
    )
    for i in ids:
        a, b = np.array(d16[i]), np.array(dd[i])
        cut = a.std() / b.std() if b.std() > 0 else float("inf")
        for name, v, extra in (
            ("16", a, ""),
            ("default", b, f"{cut:6.1f} {min(nd[i]):>5}-{max(nd[i]):<5} {statistics.median(sd[i]):8.3f}"),
        ):
            print(
                f"{i:<18} {name:<8} {v.min():10.6f} {v.max():10.6f} {v.max() - v.min():10.6f} {v.std():10.2e} "
                f"{v.std() / budgets[i]:10.2%} {extra}"
            )


if __name__ == "__main__":
    main()
