"""Pictures of what the gate, `explain` and `auto` found, as PNG files (matplotlib, an optional
extra: `pip install 'quantgate[plots]'`; the action's image has it).

- `<id>.scatter.png`: int8 against fp32 outputs on the gate's first samples, with the budget's
  meaning in the title (the drop is 1 - PLCC: how far the points stray from a straight line);
- `<id>.error.png`: a histogram of int8 - fp32;
- `<id>.nodes.png` (explain): what keeping each node in float changes in the drop;
- `<id>.candidates.png` (auto): each candidate's drop against its size, the budget as a line.

Files are written atomically; names are the model id made safe for a file system.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, param
from ..optional import require
from ..paths import atomic_write_bytes

# At most this many points in a scatter (a random subset beyond it, fixed seed).
MAX_POINTS = 20_000
PLOT_SAMPLES = 256


def _plt():
    require("matplotlib", what=param("plots"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _save(fig: Any, folder: Path, name: str) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    path = folder / name
    atomic_write_bytes(path, buf.getvalue())
    return path


def check(folder: str | Path) -> Path:
    """Before any work: matplotlib imports and the folder can be made and written, so that a
    run never ends in an error after it has changed files. Returns the folder."""
    import tempfile

    _plt()
    p = _folder(folder)
    try:
        with tempfile.NamedTemporaryFile(dir=p, prefix=".quantgate-", suffix=".probe"):
            pass
    except OSError as e:
        raise UserError(
            f"cannot write into it ({e.strerror or type(e).__name__})",
            subject=f"{param('plots')} {p}",
            fix="name a folder you can write",
        ) from None
    return p


def _folder(folder: str | Path) -> Path:
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot make the folder ({e.strerror or type(e).__name__})",
            subject=f"{param('plots')} {p}",
            fix="name a folder you can write",
        ) from None
    return p


def model_plots(
    model_id: str,
    fp32: np.ndarray,
    int8: np.ndarray,
    *,
    drop: float | None,
    budget: float,
    status: str,
    folder: Path,
    output: str | None = None,
) -> list[Path]:
    """The scatter and the error histogram of one model (values already flattened and paired)."""
    plt = _plt()
    out = []
    x, y = fp32.astype(np.float64), int8.astype(np.float64)
    if x.size > MAX_POINTS:
        keep = np.random.default_rng(0).choice(x.size, MAX_POINTS, replace=False)
        xs, ys = x[keep], y[keep]
    else:
        xs, ys = x, y
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.scatter(xs, ys, s=4, alpha=0.5, linewidths=0)
    lo, hi = float(min(xs.min(), ys.min())), float(max(xs.max(), ys.max()))
    ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=0.8, label="int8 = fp32")
    ax.set_xlabel("fp32 output")
    ax.set_ylabel("int8 output")
    shown = "n/a" if drop is None else f"{drop:.4g}"
    ax.set_title(
        f"{model_id}{f' (output {output})' if output else ''}: {status.upper()}\n"
        f"drop = 1 − PLCC = {shown}, budget {budget:g} (PLCC ≥ {1 - budget:g})",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
    out.append(_save(fig, folder, f"{_safe(model_id)}.scatter.png"))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    err = y - x
    ax.hist(err, bins=80, color="tab:orange")
    ax.set_xlabel("int8 − fp32")
    ax.set_ylabel("values")
    rms = float(np.sqrt(np.mean(err * err))) if err.size else 0.0
    ax.set_title(
        f"{model_id}: error over {x.size:,} values (RMS {rms:.3g}, worst {np.abs(err).max():.3g})", fontsize=10
    )
    out.append(_save(fig, folder, f"{_safe(model_id)}.error.png"))
    plt.close(fig)
    return out


def gate_plots(results, registry: str | Path | None, folder: str | Path, *, seed: int = 0) -> list[Path]:
    """The scatter and histogram of every measured row, on the gate's first `PLOT_SAMPLES`
    samples (the same inputs the gate drew first)."""
    from ..diagnose import make_probe
    from ..gate.entry import adhoc_entry
    from ..registry import load_registry

    _plt()
    folder = _folder(folder)
    reg = load_registry(registry) if registry is not None and Path(registry).is_file() else None
    out: list[Path] = []
    for row in results.models:
        if row.status not in ("pass", "fail") or row.fp32_path is None:
            continue
        e = None
        if reg is not None:
            e = next((x for x in reg.entries if x.id == row.id), None)
        if e is None:
            e = adhoc_entry(Path(row.fp32_path), row.budget)
        assert e.int8_path is not None
        probe = make_probe(e, reg.path if reg else None, PLOT_SAMPLES, seed, offset=0)
        got = probe.outputs(e.int8_path)
        k = probe.names.index(row.judged_output) if row.judged_output in probe.names else 0
        fp = np.concatenate([np.ravel(r[k]) for r in probe.reference])
        q = np.concatenate([np.ravel(g[k]) for g in got])
        shown = probe.names[k] if len(probe.names) > 1 else None
        out += model_plots(
            row.id, fp, q, drop=row.drop, budget=row.budget or 0.0, status=row.status, folder=folder, output=shown
        )
    return out


def explain_plots(ex, folder: str | Path) -> list[Path]:
    """A bar per node: the drop's change when it is kept in float (negative helps)."""
    plt = _plt()
    folder = _folder(folder)
    nodes = [n for n in ex.nodes if n.gain is not None]
    if not nodes:
        return []
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * len(nodes) + 1.6))
    labels = [f"{n.node} ({n.op_type})" for n in nodes][::-1]
    change = [-n.gain for n in nodes][::-1]
    ax.barh(labels, change, color=["tab:green" if c < 0 else "tab:red" for c in change])
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("change in drop when kept in float (negative: helps)")
    ax.set_title(f"{ex.id}: drop {ex.baseline_drop:.4g} re-made in {ex.mode} PTQ, budget {ex.budget:g}", fontsize=10)
    path = _save(fig, folder, f"{_safe(ex.id)}.nodes.png")
    plt.close(fig)
    return [path]


def auto_plots(report, folder: str | Path) -> list[Path]:
    """Each model's candidates: drop against size ratio, the budget as a line, the choice ringed."""
    plt = _plt()
    folder = _folder(folder)
    out = []
    for o in report.outcomes:
        pts = [(t, t.size_ratio, t.drop) for t in o.tried if t.size_ratio is not None and t.drop is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(5.6, 4.2))
        for t, size, drop in pts:
            colour = "tab:green" if t.passed else ("tab:gray" if t.status == "name-only" else "tab:red")
            ax.scatter([size], [drop], color=colour, s=40, zorder=3)
            label = t.candidate.name + (" (int8 in name only)" if t.status == "name-only" else "")
            ax.annotate(label, (size, drop), textcoords="offset points", xytext=(5, 4), fontsize=8)
            if t is o.chosen:
                ax.scatter([size], [drop], s=160, facecolors="none", edgecolors="black", zorder=4)
        ax.axhline(o.entry.budget, color="tab:red", linestyle="--", linewidth=0.8, label=f"budget {o.entry.budget:g}")
        ax.set_xlabel("int8 file size / fp32 size")
        ax.set_ylabel("drop (1 − PLCC)")
        ax.set_title(f"{o.entry.id}: {o.decision}", fontsize=9, wrap=True)
        ax.legend(fontsize=8)
        out.append(_save(fig, folder, f"{_safe(o.entry.id)}.candidates.png"))
        plt.close(fig)
    return out
