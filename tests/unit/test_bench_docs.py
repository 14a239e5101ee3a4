"""The tables in docs/benchmarks.md are what their scripts print.

Each ```sh block there names a script under bench/; the ```text block after it (before the next
command or section) is that script's output. Two checks:

- format: every line of the block is a line the script's current code can print. The script's
  `print` calls are read from its source (ast): literal text and fields of constant text (column
  headers such as `{'model':<18}`) must match exactly, run-time fields match anything. A column
  renamed, added or dropped in the script, a row or column written by hand, or a warning pasted
  in with the output fails here.
- figures: for the scripts whose figures are not timings, the block holds what the script prints
  now (the registry bench's sizes and problem counts, re-run on the small sizes).

Timing figures cannot be compared (the machine is shared); they carry the CPU and load they came
from instead, and that the block names the CPU is checked too.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from benchdocs import line_patterns, tables
from conftest import REPO

TABLES = tables()


def test_every_bench_script_named_in_the_doc_has_its_table():
    scripts = {t.script.name for t in TABLES}
    assert len(TABLES) >= 8 and {"hostile_corpus.py", "registry_bench.py", "qat_vs_ptq.py"} <= scripts
    assert all(t.script.is_file() for t in TABLES), [t.script for t in TABLES if not t.script.is_file()]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"{t.script.name}@{t.at}")
def test_every_line_of_a_table_is_one_its_script_prints(table):
    patterns = line_patterns(table.script)
    foreign = [ln for ln in table.lines if ln.strip() and not any(p.fullmatch(ln) for p in patterns)]
    assert not foreign, f"docs/benchmarks.md:{table.at}: lines {table.script.name} does not print: {foreign}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"{t.script.name}@{t.at}")
def test_every_table_names_its_cpu(table):
    assert any(re.match(r"#? ?CPU: \S", ln) for ln in table.lines), f"docs/benchmarks.md:{table.at}: no CPU line"


def test_the_format_check_bites():
    """A column the script does not print, a renamed header and a pasted warning all fail."""
    table = next(t for t in TABLES if t.script.name == "qat_vs_ptq.py")
    patterns = line_patterns(table.script)
    header = next(ln for ln in table.lines if ln.startswith("model "))
    assert any(p.fullmatch(header) for p in patterns)
    for bad in (header + "  before", header.replace("ptq*", "ptq+"), "bench/x.py:1: DeprecationWarning: old"):
        assert not any(p.fullmatch(bad) for p in patterns), bad


# -- figures that are not timings: what the script prints now -----------------------------------


def _rows(lines: list[str]) -> dict[str, list[str]]:
    return {ln.split()[0]: ln.split() for ln in lines if ln.strip() and ln.split()[0].isdigit()}


def test_registry_sizes_and_problem_counts_are_what_the_script_prints_now():
    """registry_bench: entries, MB and problems are deterministic (load s is a timing)."""
    table = next(t for t in TABLES if t.script.name == "registry_bench.py")
    shown = _rows(table.lines)
    small = [n for n in ("1000", "4000") if n in shown]
    assert small, shown
    proc = subprocess.run(
        [sys.executable, str(table.script), "--entries", ",".join(small), "--repeat", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    now = _rows(proc.stdout.splitlines())
    for n in small:
        assert now[n][:3] == shown[n][:3], (n, now[n], shown[n])


def test_the_hostile_corpus_counts_are_what_the_script_prints_now():
    """hostile_corpus: every count is deterministic (no timing): the whole table, re-run."""
    table = next(t for t in TABLES if t.script.name == "hostile_corpus.py")
    proc = subprocess.run([sys.executable, str(table.script)], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]

    def counts(lines):
        return [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith("# CPU:")]

    assert counts(proc.stdout.splitlines()) == counts(table.lines)
