"""`--avx2-check`: each measured row again, its int8 side computed as an AVX2-only x86 CPU
computes it (`emulate`, under qemu-x86_64 -cpu Haswell), on the same samples at the count the
native run settled on; the row gets the `avx2` block and a warning when the verdicts differ."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..registry import Entry
from ..results import Row
from . import emulate
from .judge import verdict
from .measure import measure
from .pair import ModelPair, RowSoFar, base_row, open_pair
from .settings import GateSettings


def with_avx2(
    rows: list[Row], selected: list[Entry], settings: GateSettings, registry: Path | None, root: Path
) -> list[Row]:
    """Each measured row with its `avx2` block: the same model on the same samples, its int8 side
    computed as an AVX2-only x86 CPU computes it."""
    prepared: dict[int, ModelPair] = {}
    plan = []
    for i, (e, r) in enumerate(zip(selected, rows, strict=True)):
        if r.status not in ("pass", "fail") or r.samples is None:
            continue
        p = open_pair(e, replace(settings, samples=r.samples), RowSoFar(base_row(e, root)), registry)
        prepared[i] = p
        if p.eval_set is not None:
            assert e.eval_path is not None
            feeds = {"kind": "eval", "path": str(e.eval_path), "inputs": [i.name for i in p.eval_set.inputs]}
        else:
            feeds = {"kind": "drawn", "plans": [pl.to_json() for pl in p.plans]}
        plan.append(
            {
                "index": i,
                "int8": str(e.int8_path),
                "feeds": feeds,
                "seed": settings.seed,
                "samples": r.samples,
                "names": p.names,
            }
        )
    found, kernels = emulate.int8_outputs(plan) if plan else ({}, {})
    out = []
    for i, (e, r) in enumerate(zip(selected, rows, strict=True)):
        if i in prepared:
            emulated = _emulated_row(e, r, prepared[i], found[i], settings, root)
            block, warning = emulate.summary(r, emulated, kernels)
            r = r.with_(avx2=block, warnings=r.warnings + ((warning,) if warning else ()))
        out.append(r)
    return out


def _emulated_row(e: Entry, native: Row, p: ModelPair, outputs: dict | str, settings: GateSettings, root: Path) -> Row:
    base = base_row(e, root)
    if isinstance(outputs, str):
        return base.with_(status="error", reason=outputs)
    n = native.samples or 0

    def run_pair(feeds: list[dict], first: int) -> tuple[list[list], list[list]]:
        fp = [p.run_fp32(feed, first + j) for j, feed in enumerate(feeds)]
        return (
            [[f[k] for f in fp] for k in range(len(p.names))],
            [[outputs[name][first + j] for j in range(len(feeds))] for name in p.names],
        )

    measured = measure(
        run_pair,
        p.names,
        p.judged,
        p.feeds(),
        p.budgets,
        settings,
        fixed=n,
        mode=p.mode,
        keep_values=settings.reference_compat,
        level=native.sampling.look_confidence if native.sampling is not None else None,
    )
    judged = verdict(measured, p.judged, p.budgets, e.budget, settings.marginal_policy)
    return judged.apply(base.with_(samples=measured.sampling.samples))
