"""Benchmark: coverage of the gate's intervals and the pass rates of its verdicts, simulated.

    python bench/coverage.py [--trials 400] [--seed 1] [--cap 65536]

The simulation of tests/unit/test_coverage.py (`quantgate.gate.simulate`: the gate's own
estimator, planning and decisions on scalar outputs whose errors come from a known family, so
the true drop is known in closed form), with more trials and the default sample cap:

1. coverage of the 95 % interval at each sample count, for the gate's interval (BCa widened by
   the tail allowance), plain BCa (the previous release) and plain percentiles;
2. for a model whose true drop is 0.9, 1.0 and 1.1 times its budget: how often adaptive sampling
   decides it within, over, or leaves it marginal, the samples it took, and the share of runs
   that pass under each --on-marginal policy.

Run it with two seeds to see how much the figures move (docs/measurement.md shows both).
"""

from __future__ import annotations

import argparse
import statistics
import time

from quantgate.gate import estimate, simulate
from quantgate.gate.settings import MAX_SAMPLES, MIN_SAMPLES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cap", type=int, default=MAX_SAMPLES)
    args = ap.parse_args()
    ns = [MIN_SAMPLES * 2**k for k in range(20) if MIN_SAMPLES * 2**k <= args.cap]
    shown = [n for n in ns if n <= 4096]
    t0 = time.perf_counter()
    print(
        f"# {args.trials} trials per family, seed {args.seed}; scalar output, true drop {simulate.TRUE_DROP:.6f}; "
        f"tail allowance {estimate.TAIL_ALLOWANCE:g}; pilot {MIN_SAMPLES}, cap {args.cap}"
    )
    print("# coverage of the 95 % interval (gate / plain BCa / plain percentiles) at n samples")
    print(f"{'family':<12} " + " ".join(f"{n:>17}" for n in shown))
    runs = {}
    for name, fam in simulate.FAMILIES.items():
        at = simulate.looked(simulate.matrices(fam, args.trials, ns, args.seed))
        runs[name] = at
        cov = simulate.coverage({n: at[n] for n in shown})
        cells = []
        for n in shown:
            g, b, p = (cov[(n, m)][1] / args.trials for m in ("gate", "bca", "percentile"))
            cells.append(f"{g:.3f}/{b:.3f}/{p:.3f}")
        print(f"{name:<12} " + " ".join(f"{c:>17}" for c in cells))
    print("# adaptive sampling on a model whose true drop is r times its budget")
    print(
        f"{'family':<12} {'r':>4} {'within':>7} {'over':>6} {'marginal':>9} {'median n':>9}  "
        f"{'pass: fail':>10} {'warn':>6} {'pass':>6}"
    )
    for name, at in runs.items():
        for ratio in (0.9, 1.0, 1.1):
            v = simulate.verdicts(at, simulate.TRUE_DROP / ratio, MIN_SAMPLES, args.cap)
            share = {d: sum(x.decision == d for x in v) / len(v) for d in ("within", "over", "")}
            med = statistics.median(x.samples for x in v)
            rates = [simulate.pass_rate(v, p) for p in ("fail", "warn", "pass")]
            print(
                f"{name:<12} {ratio:>4} {share['within']:7.3f} {share['over']:6.3f} {share['']:9.3f} {med:9.0f}  "
                f"{rates[0]:10.3f} {rates[1]:6.3f} {rates[2]:6.3f}"
            )
    print(f"# {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
