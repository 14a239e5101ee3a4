"""Benchmark: what the default gate costs against the first user's reference method, and whether
its verdicts hold across seeds.

    python bench/gate_cost.py [--rounds 5] [--seeds 10]

Two registries: the shipped one (model/tiny/registry.json) and one built like the first user's
(bench/cost_models.py: a 224x224 conv NR metric whose dynamic sidecar is over budget, a 224x224
conv filter whose dynamic int8 runs several times slower than fp32, two small MLPs). For each:

- `quantgate gate` (the default) and `quantgate gate --reference-compat` (16 samples, first
  input and output) run as separate processes, alternating (default, reference, default, ...),
  `--rounds` times each: wall time and peak resident memory (the process's own, from wait4);
  the figures are medians with their min-max, and the ratio is the median of the per-round
  ratios;
- the default gate's verdict per model at seeds 0..`--seeds`-1 (in one process), the sample
  counts it took and why it stopped; "same" says whether every seed gave every model the same
  verdict.

The machine is shared: the load average is printed before and after; compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run(registry: Path, extra: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one `quantgate gate` process."""
    cmd = [sys.executable, "-m", "quantgate", "gate", "--registry", str(registry), "-q", *extra]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"


def cost(name: str, registry: Path, cwd: Path, rounds: int) -> None:
    run(registry, [], cwd)  # warm-up of each arm (files in the page cache, the interpreter's .pyc)
    run(registry, ["--reference-compat"], cwd)
    arms: dict[str, list[tuple[float, float, int]]] = {"default": [], "reference": []}
    for _ in range(rounds):
        arms["default"].append(run(registry, [], cwd))
        arms["reference"].append(run(registry, ["--reference-compat"], cwd))
    d, r = arms["default"], arms["reference"]
    wall_ratio = statistics.median(a[0] / b[0] for a, b in zip(d, r, strict=True))
    mem_ratio = statistics.median(a[1] / b[1] for a, b in zip(d, r, strict=True))
    for label, arm, shown in (("default", d, name), ("reference", r, "")):
        print(
            f"{shown:<12} {label:<10} wall s {spread([x[0] for x in arm])}  "
            f"peak MiB {spread([x[1] for x in arm])}  exit {arm[0][2]}"
        )
    print(f"{'':<12} {'ratio':<10} wall {wall_ratio:.2f}x  memory {mem_ratio:.2f}x")


def verdicts(name: str, registry: Path, seeds: int) -> None:
    from quantgate.gate import run_gate

    per: dict[str, list] = {}
    for seed in range(seeds):
        for row in run_gate(registry, seed=seed).models:
            per.setdefault(row.id, []).append(row)
    for mid, rows in per.items():
        statuses = sorted({r.status + ("~" if r.marginal else "") for r in rows})
        ns = [r.samples or 0 for r in rows]
        stops = sorted({r.sampling.stopped if r.sampling else "-" for r in rows})
        same = "yes" if len(statuses) == 1 else "NO"
        print(
            f"{name:<12} {mid:<16} {'/'.join(statuses):<10} same {same:<3}  n {min(ns)}-{max(ns)}  "
            f"stopped: {', '.join(stops)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    import cost_models
    from quantgate.cpu import cpu_info, int8_kernels

    repo = HERE.parent
    print(f"# CPU: {cpu_info()['model']}; int8 kernels: {int8_kernels()['family']}; {os.cpu_count()} logical cores")
    print(f"# load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "first_user"
        reg = cost_models.build(built)
        subprocess.run(["git", "init", "-q", str(built)], check=True)  # the registry's root
        registries = [("shipped", repo / "model" / "tiny" / "registry.json", repo), ("first-user", reg, built)]
        print(f"# {args.rounds} rounds per arm, alternating; medians (min-max)")
        for name, path, cwd in registries:
            cost(name, path, cwd, args.rounds)
        print(f"# the default gate's verdicts at seeds 0..{args.seeds - 1} (~: marginal)")
        for name, path, _cwd in registries:
            verdicts(name, path, args.seeds)
    print(f"# load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
