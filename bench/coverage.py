"""Benchmark: coverage of the gate's intervals and the pass rates of its verdicts, simulated.

    python bench/coverage.py [--trials 400] [--seed 1 [--seed 2 ...]] [--cap 65536]

The simulation of tests/unit/test_coverage.py (`quantgate.gate.simulate`: the gate's own
estimator, planning and decisions on scalar outputs whose errors come from a known family, so
the true drop is known in closed form), with more trials and the default sample cap:

1. coverage of the 95 % interval at each sample count, for the gate's interval (BCa widened by
   the tail allowance), plain BCa (the previous release) and plain percentiles, with the first
   seed; with more seeds, how far their cells move;
2. for a model whose true drop is 0.9, 1.0 and 1.1 times its budget: how often adaptive sampling
   decides it within, over, or leaves it marginal, the median samples it took, and the share of
   runs that pass under each --on-marginal policy (one figure per seed, `a / b`).

docs/measurement.md shows the output of `--seed 1 --seed 2`, and tests/unit/test_measurement_docs.py
re-computes its coverage cells up to 128 samples.
"""

from __future__ import annotations

import argparse
import statistics
import time

from quantgate.gate import estimate, simulate
from quantgate.gate.settings import MAX_SAMPLES, MIN_SAMPLES

SHOWN_UP_TO = 4096  # the coverage table's last column
_METHODS = ("gate", "bca", "percentile")


def coverage_cells(runs: dict[str, dict], trials: int, shown: list[int]) -> dict[str, list[tuple[float, ...]]]:
    """family -> per shown n, the (gate, plain BCa, percentile) coverage shares."""
    out = {}
    for name, at in runs.items():
        cov = simulate.coverage({n: at[n] for n in shown})
        out[name] = [tuple(cov[(n, m)][1] / trials for m in _METHODS) for n in shown]
    return out


def coverage_line(name: str, cells: list[tuple[float, ...]]) -> str:
    return f"{name:<12} " + " ".join(f"{'/'.join(f'{c:.3f}' for c in cell):>17}" for cell in cells)


def verdict_figures(at: dict, ratio: float, cap: int) -> tuple[float, ...]:
    """within, over, marginal shares, median samples, pass rates under fail / warn / pass."""
    v = simulate.verdicts(at, simulate.TRUE_DROP / ratio, MIN_SAMPLES, cap)
    share = [sum(x.decision == d for x in v) / len(v) for d in ("within", "over", "")]
    rates = [simulate.pass_rate(v, p) for p in ("fail", "warn", "pass")]
    return (*share, statistics.median(x.samples for x in v), *rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--seed", type=int, action="append", help="repeat for more seeds (default 1)")
    ap.add_argument("--cap", type=int, default=MAX_SAMPLES)
    args = ap.parse_args()
    seeds = args.seed or [1]
    ns = [MIN_SAMPLES * 2**k for k in range(20) if MIN_SAMPLES * 2**k <= args.cap]
    shown = [n for n in ns if n <= SHOWN_UP_TO]
    t0 = time.perf_counter()
    print(
        f"# {args.trials} trials per family, seed {' / '.join(map(str, seeds))}; scalar output, true drop "
        f"{simulate.TRUE_DROP:.6f}; tail allowance {estimate.TAIL_ALLOWANCE:g}; pilot {MIN_SAMPLES}, cap {args.cap}"
    )
    runs = {
        s: {
            name: simulate.looked(simulate.matrices(fam, args.trials, ns, s)) for name, fam in simulate.FAMILIES.items()
        }
        for s in seeds
    }
    cells = {s: coverage_cells(runs[s], args.trials, shown) for s in seeds}
    print(f"# coverage of the 95 % interval (gate / plain BCa / plain percentiles) at n samples, seed {seeds[0]}")
    print(f"{'family':<12} " + " ".join(f"{n:>17}" for n in shown))
    for name, row in cells[seeds[0]].items():
        print(coverage_line(name, row))
    for s in seeds[1:]:
        moved = [
            max(
                abs(a[k] - b[k])
                for name in cells[s]
                for a, b in zip(cells[s][name], cells[seeds[0]][name], strict=True)
            )
            for k in range(len(_METHODS))
        ]
        print(
            f"# seed {s} moves the cells by at most {moved[0]:.3f} (gate), {moved[1]:.3f} (plain BCa), "
            f"{moved[2]:.3f} (plain percentiles)"
        )
    print(f"# adaptive sampling on a model whose true drop is r times its budget (seed {' / '.join(map(str, seeds))})")
    heads = ("decided within", "decided over", "marginal", "median n", "pass: fail", "warn", "pass")
    width = 8 * len(seeds) - 3
    print((f"{'family':<12} {'r':>4}  " + "  ".join(f"{h:<{width}}" for h in heads)).rstrip())
    for name in simulate.FAMILIES:
        for ratio in (0.9, 1.0, 1.1):
            figs = [verdict_figures(runs[s][name], ratio, args.cap) for s in seeds]
            cols = [" / ".join(f"{f[k]:5.0f}" if k == 3 else f"{f[k]:.3f}" for f in figs) for k in range(len(heads))]
            print((f"{name:<12} {ratio:>4}  " + "  ".join(f"{c:<{width}}" for c in cols)).rstrip())
    print(f"# {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
