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
