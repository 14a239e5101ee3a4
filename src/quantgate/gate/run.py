"""The accuracy gate: registry entries in, one verdict row per model out, and the exit code.

Each model is one self-contained unit of work (`entry.gate_entry`): an error in one never stops
the others. Every output's figures are reported; the judged outputs (every output, or the
entry's `quant_gate_outputs`) are held against the model's budgets (see `judge`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import provenance
from ..errors import UserError, param
from ..limits import STDIN
from ..paths import display
from ..registry import DEFAULT_REGISTRY, Entry, Registry, load_registry
from ..results import Results, Row
from . import emulate
from .avx2 import with_avx2
from .entry import adhoc_entry, gate_entry
from .settings import DEFAULT_SEED, MAX_SAMPLES, MAX_SECONDS, MIN_SAMPLES, MODEL_TIMEOUT, GateSettings


def run_gate(
    registry: str | Path | None = DEFAULT_REGISTRY,
    ids: list[str] | None = None,
    *,
    root: str | Path | None = None,
    samples: int | None = None,
    seed: int = DEFAULT_SEED,
    reference_compat: bool = False,
    budget: float | None = None,
    max_samples: int = MAX_SAMPLES,
    max_seconds: float = MAX_SECONDS,
    avx2_check: bool = False,
    bench: bool = False,
    on_marginal: str | None = None,
    model_timeout: float = MODEL_TIMEOUT,
    argv: list[str] | None = None,
    progress: Callable[[Row, int, int], None] | None = None,
    starting: Callable[[str, int, int], None] | None = None,
) -> Results:
    """Gate the selected models (ids or .onnx paths; none = all) and return the results.

    `samples` fixes the sample count of every model; None samples adaptively, up to
    `max_samples` and `max_seconds` per model. `avx2_check` also measures each model as an
    AVX2-only x86 CPU computes it (under qemu-x86_64 -cpu Haswell). `bench` also times fp32
    against int8 on this machine (`gate.latency`). `on_marginal` ("fail", "warn", "pass") says
    what a row whose interval still straddles a budget counts as (default fail; pass under
    `reference_compat`); `model_timeout` (seconds) turns a model still running into an error
    row. `progress(row, i, n)` is called after each model, for a terminal line; `starting(id, k,
    m)` before each of the m models that will be measured (not the fp32 entries skipped).
    """
    if budget is not None and not (isinstance(budget, (int, float)) and 0 <= budget <= 1):
        raise UserError(f"{budget} is outside [0, 1]", subject=param("budget"))
    settings = GateSettings(
        samples=samples,
        seed=seed,
        reference_compat=reference_compat,
        max_samples=max_samples,
        min_samples=min(MIN_SAMPLES, max_samples),
        max_seconds=max_seconds,
        avx2_check=avx2_check,
        bench=bench,
        on_marginal=on_marginal,
        model_timeout=model_timeout,
    )
    ids = [str(i) for i in (ids or [])]
    reg, root_p, selected = select(registry, ids, root, budget)
    if avx2_check:
        emulate.qemu_path()  # before any model is measured: one line when qemu-user is missing
    rows = []
    measured = [id(e) for e in selected if e.problems or e.mode != "fp32"]  # gate_entry skips the rest
    for e in selected:
        if starting and id(e) in measured:
            starting(e.id, measured.index(id(e)) + 1, len(measured))
        row = gate_entry(e, settings, root_p, reg.path if reg else None)
        rows.append(row)
        if progress and not avx2_check:
            progress(row, len(rows), len(selected))
    if avx2_check:
        rows = with_avx2(rows, selected, settings, reg.path if reg else None, root_p)
        for i, row in enumerate(rows):
            if progress:
                progress(row, i + 1, len(rows))
    return Results(
        models=tuple(rows),
        settings={**settings.to_json(), "selection": ids},
        run_provenance=provenance.build(inputs=_digested(reg, selected), root=root_p, argv=argv),
        registry=(STDIN if str(reg.path) == STDIN else display(reg.path, root_p)) if reg else None,
    )


def select(
    registry: str | Path | None, ids: list[str], root: str | Path | None, budget: float | None
) -> tuple[Registry | None, Path, list[Entry]]:
    """The registry (read only when an id needs it or it exists), the repository root, and the
    entries the selection names: every entry for none, an id's entry, a listed file's entry, or
    an entry for a file no registry lists (`adhoc_entry`)."""
    reg = None
    reg_path = Path(registry) if registry is not None else None
    needs_registry = not ids or any(not str(i).endswith(".onnx") for i in ids)
    if reg_path is not None and (needs_registry or reg_path.exists()):
        reg = load_registry(reg_path, root)
    root_p = reg.root if reg else (Path(root).resolve() if root else Path.cwd())
    selected: list[Entry] = []
    if not ids:
        assert reg is not None
        selected = list(reg.entries)
    for sel in ids:
        if str(sel).endswith(".onnx"):
            found = reg.find_by_file(Path(sel)) if reg else None
            if found is None and reg is not None and not Path(sel).exists():
                for e in reg.entries:
                    if e.onnx_path is not None and e.onnx_path.name == Path(sel).name:
                        listed = display(e.onnx_path, Path.cwd())  # as the user would type it from here
                        raise UserError(
                            f"no such file here; the registry lists {listed} as '{e.id}'",
                            subject=sel,
                            fix=f"name the id '{e.id}' or the file's path",
                        )
            selected.append(found or adhoc_entry(Path(sel), budget))
        else:
            if reg is None:
                raise UserError(f"'{sel}': an id needs a registry", fix=f"pass {param('registry')} PATH")
            selected.append(reg.get(sel))
    return reg, root_p, selected


def _digested(reg: Registry | None, selected: list[Entry]) -> dict[str, Path]:
    """The files `run_provenance` digests: the registry and each selected entry's two files."""
    inputs: dict[str, Path] = {"registry": reg.path} if reg else {}
    for e in selected:
        if e.problems:  # a refused entry's files are never read, not even to be digested
            continue
        for key, p in (("fp32", e.onnx_path), ("int8", e.int8_path)):
            if p is not None and p.is_file():
                inputs[f"{e.id}:{key}"] = p
    return inputs
