"""The simulated tables in docs/measurement.md are what bench/coverage.py prints.

Both tables there (coverage of the intervals, and the verdicts of adaptive sampling near the
budget) are printed by one command; each is a ```text block after a ```sh block naming it. Every line must be one the
script can print (the format check of test_bench_docs.py), and the coverage cells up to 128
samples are computed again here, with the trials and first seed the block names, and must be the
same to the last digit: the simulation is seeded per trial, so the first columns do not depend on
the larger counts the script also runs. (The rest, up to 65,536 samples a run, takes the script
about ten minutes a seed.)
"""

from __future__ import annotations

import importlib.util
import math
import re

import pytest

from benchdocs import line_patterns, tables
from conftest import REPO
from quantgate.gate import simulate

DOC = REPO / "docs" / "measurement.md"
TABLES = [t for t in tables(DOC) if t.script.name == "coverage.py"]
RECOMPUTED_UP_TO = 128


def _script():
    spec = importlib.util.spec_from_file_location("bench_coverage", REPO / "bench" / "coverage.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _coverage_block() -> list[str]:
    return next(t.lines for t in TABLES if any(ln.startswith("# coverage of the 95 % interval") for ln in t.lines))


def test_the_doc_shows_both_tables_of_one_command():
    assert 1 <= len(TABLES) <= 2 and len({tuple(t.command) for t in TABLES}) == 1, [t.at for t in TABLES]
    lines = [ln for t in TABLES for ln in t.lines]
    assert lines[0].startswith("# ") and "trials per family, seed" in lines[0]
    assert any(ln.startswith("# adaptive sampling on a model") for ln in lines)
    assert sum(ln.split()[0] in simulate.FAMILIES for ln in lines if ln.strip()) == 4 + 4 * 3
    assert _coverage_block()


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"coverage.py@{t.at}")
def test_every_line_is_one_the_script_prints(table):
    patterns = line_patterns(table.script)
    foreign = [ln for ln in table.lines if ln.strip() and not any(p.fullmatch(ln) for p in patterns)]
    assert not foreign, f"docs/measurement.md:{table.at}: lines bench/coverage.py does not print: {foreign}"


def _doc_coverage(lines: list[str]) -> tuple[int, int, list[int], dict[str, str]]:
    """(trials, first seed, the columns' sample counts, family -> its coverage line)."""
    head = re.match(r"# (\d+) trials per family, seed (\d+)", lines[0])
    assert head, lines[0]
    at = next(i for i, ln in enumerate(lines) if ln.startswith("# coverage of the 95 % interval"))
    ns = [int(w) for w in lines[at + 1].split()[1:]]
    rows = {ln.split()[0]: ln for ln in lines[at + 2 : at + 2 + len(simulate.FAMILIES)]}
    return int(head.group(1)), int(head.group(2)), ns, rows


def test_the_coverage_cells_are_what_the_simulation_gives_now():
    bench = _script()
    trials, seed, ns, rows = _doc_coverage(_coverage_block())
    assert set(rows) == set(simulate.FAMILIES)
    shown = [n for n in ns if n <= RECOMPUTED_UP_TO]
    assert len(shown) >= 3
    runs = {
        name: simulate.looked(simulate.matrices(fam, trials, shown, seed)) for name, fam in simulate.FAMILIES.items()
    }
    cells = bench.coverage_cells(runs, trials, shown)
    for name, row in cells.items():
        now = bench.coverage_line(name, row).split()
        assert rows[name].split()[: len(now)] == now, f"{name}: the doc says {rows[name]}, the simulation {now}"


def test_the_verdict_rows_hold_one_figure_per_seed_and_add_up():
    """The verdict table's cells are computed strings (the format check lets any text through
    there), so their shape is checked here: one figure per seed in every column, and what the
    simulation guarantees: within + over + marginal is every run, `fail` passes exactly the runs
    decided within, and `warn` and `pass` (the point estimate) pass at least those."""
    lines = [ln for t in TABLES for ln in t.lines]
    seeds = len(re.match(r"# \d+ trials per family, seed ([\d / ]+);", lines[0]).group(1).split(" / "))  # type: ignore[union-attr]
    share = r"(\d\.\d{3})" + r" / (\d\.\d{3})" * (seeds - 1)
    count = r"\s*(\d+)" + r" /\s+(\d+)" * (seeds - 1)
    row = re.compile(r"(\w+)\s+(0\.9|1\.0|1\.1)  " + "  ".join([share] * 3 + [count] + [share] * 3))
    rows = [
        ln
        for ln in lines
        if ln.split() and ln.split()[0] in simulate.FAMILIES and ln.split()[1] in ("0.9", "1.0", "1.1")
    ]
    assert len(rows) == 4 * 3
    for ln in rows:
        m = row.fullmatch(ln.rstrip())
        assert m, f"not a verdict row: {ln!r}"
        v = [float(x) for x in m.groups()[2:]]
        cols = [v[k * seeds : (k + 1) * seeds] for k in range(7)]
        for s in range(seeds):
            within, over, marginal, n, fail, warn, pass_ = (c[s] for c in cols)
            assert abs(within + over + marginal - 1) <= 0.0015, ln
            assert fail == within and warn >= within and pass_ >= within, ln
            assert 32 <= n <= 65536 and n == 2 ** round(math.log2(n)), ln
