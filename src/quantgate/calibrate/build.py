"""Build a calibration set from a source, check an existing one, and describe both in a report.

Order of work, so that a mistake never leaves a half-made result: read the model, plan the
registry edit (if asked), read the source, refuse or skip bad rows, sample, shape and cast,
validate against the model with `sampleset.validate`, and only then write the
`.npz` (atomically, byte-identical for the same inputs and seed), the registry, the report.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import provenance
from .. import sampleset as cal
from ..errors import UserError, param
from ..onnxio import graph_inputs, load_model
from ..paths import (
    all_or_nothing,
    atomic_write_bytes,
    atomic_write_text,
    check_writable,
    display,
    find_repo_root,
    refuse_clobber,
    sha256_file,
    write_json,
)
from ..registry_edit import locked, write_field
from ..results import Produced
from .images import ImageOptions
from .layout import slot_for
from .sources import open_source

DEFAULT_N = 64
REGISTRY_FIELD = "quant_calibration_set"
_REASONS = ("null", "nan", "inf")
_REASON_TEXT = {"null": "null (missing) values", "nan": "NaN values", "inf": "infinite values"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp: the same set is the same bytes


@dataclass(frozen=True)
class BuildOptions:
    """What `calibrate build` was asked for, beyond model, source and output."""

    n: int | None = None  # None: DEFAULT_N
    seed: int = 0
    take_all: bool = False
    columns: tuple[str, ...] = ()
    maps: tuple[str, ...] = ()  # "COL=INPUT"
    dims: dict = field(default_factory=dict)
    drop_nonfinite: bool = False
    image: ImageOptions | None = None

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "seed": self.seed,
            "all": self.take_all,
            "columns": list(self.columns),
            "map": list(self.maps),
            "dims": dict(self.dims),
            "drop_nonfinite": self.drop_nonfinite,
            "image": self.image.to_json() if self.image else None,
        }


def npz_bytes(arrays: dict[str, np.ndarray], order: list[str]) -> bytes:
    """An .npz that `numpy.load` reads, with fixed member order and timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name in order:
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            z.writestr(info, member.getvalue())
    return buf.getvalue()


def stats(arrays: dict[str, np.ndarray], order: list[str]) -> list[dict]:
    out = []
    for name in order:
        a = arrays[name]
        f = a.astype(np.float64)
        out.append(
            {
                "name": name,
                "shape": list(a.shape),
                "dtype": str(a.dtype),
                "min": float(f.min()) if f.size else None,
                "max": float(f.max()) if f.size else None,
                "mean": float(f.mean()) if f.size else None,
                "std": float(f.std()) if f.size else None,
            }
        )
    return out


def _cast(a: np.ndarray, dtype: np.dtype, source: Path, name: str) -> np.ndarray:
    """Input `name`'s values from `source` as the model's `dtype`, refused where they would change."""
    if a.dtype == dtype:
        return a
    subject, where = str(source), f"input '{name}'"
    if dtype.kind in "iub" and a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        raise UserError(
            f"holds fractional values, the input is {dtype}", subject=subject, field=where, fix="give whole numbers"
        )
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise UserError(
                f"values {a.min()}..{a.max()} do not fit {dtype} ({info.min}..{info.max})", subject=subject, field=where
            )
    with np.errstate(over="ignore", invalid="ignore"):
        b = a.astype(dtype)
    if dtype.kind == "f" and not np.all(np.isfinite(b)):
        raise UserError(
            f"values beyond the range of {dtype} (largest magnitude {float(np.abs(a).max()):.3g})",
            subject=subject,
            field=where,
            fix="rescale the source",
        )
    return b


def _skip_plan(src, drop: bool) -> tuple[np.ndarray, dict]:
    """Mask of rows to skip and the report's account of them; refuses bad rows unless `drop`."""
    skip = np.zeros(src.rows, dtype=bool)
    by_reason: dict[str, int] = {}
    where: dict[str, dict[str, int]] = {}
    if not src.bad:
        return skip, {"count": 0, "by_reason": {}, "where": {}, "rows": []}
    if not drop:
        b = sorted(src.bad, key=lambda x: _REASONS.index(x.reason))[0]
        rows = np.flatnonzero(b.mask)
        raise UserError(
            f"holds {_REASON_TEXT[b.reason]} in {len(rows)} row(s) (first: row {int(rows[0])})",
            subject=str(src.path),
            field=b.where,
            fix=f"clean the source or pass {param('drop_nonfinite')} to skip those rows",
        )
    for reason in _REASONS:  # a row counts once, under its first reason
        for b in src.bad:
            if b.reason != reason:
                continue
            new = b.mask & ~skip
            where.setdefault(b.where, {})[reason] = int(b.mask.sum())
            by_reason[reason] = by_reason.get(reason, 0) + int(new.sum())
            skip |= b.mask
    rows = np.flatnonzero(skip)
    return skip, {
        "count": len(rows),
        "by_reason": by_reason,
        "where": where,
        "rows": [int(r) for r in rows[:100]],
        "rows_truncated": len(rows) > 100,
    }


def sample_rows(usable: np.ndarray, *, n: int | None, seed: int, take_all: bool, label: str, total: int) -> np.ndarray:
    """Row indices of the set: every usable row (`take_all`), or `n` drawn without replacement
    for `seed`, kept in source order."""
    if take_all:
        return usable
    n = DEFAULT_N if n is None else n
    if n < 1:
        raise UserError(
            "a calibration set needs at least one sample",
            subject=f"{param('n')} {n}",
            fix=f"give {param('n')} 1 or more",
        )
    if n > len(usable):
        skipped = f" ({total - len(usable)} skipped)" if total != len(usable) else ""
        raise UserError(
            f"has {len(usable)} usable row(s){skipped}, {param('n')} asks for {n}",
            subject=label,
            fix=f"lower {param('n')} or pass {param('take_all')} to take every row",
        )
    pick = np.random.default_rng(seed).choice(len(usable), size=n, replace=False)
    return usable[np.sort(pick)]


def _registry_plan(registry: Path, registry_id: str, root: Path | None, out: Path, model: Path) -> dict:
    from ..registry import load_registry

    reg = load_registry(registry, root)
    e = reg.get(registry_id)
    if (
        e.onnx_path is not None
        and e.onnx_path != model.resolve()
        and not (e.onnx_path.is_file() and sha256_file(e.onnx_path) == sha256_file(model))
    ):
        raise UserError(
            f"entry '{registry_id}' is the model {display(e.onnx_path, reg.root)}, not {param('model')} {model}",
            subject=str(registry),
            fix=f"pass that model or the matching {param('registry_id')}",
        )
    try:
        rel = out.resolve().relative_to(reg.root)
    except ValueError:
        raise UserError(
            f"outside the repository root {reg.root}, so the registry cannot name it",
            subject=f"{param('out')} {out}",
            fix="write the set below that folder",
        ) from None
    value = rel.as_posix()
    write_field(reg.path, e.index, REGISTRY_FIELD, value)  # proves the edit works before any write
    return {"path": reg.path, "id": registry_id, "index": e.index, "value": value, "mode": e.mode, "root": reg.root}


def build_set(
    model: str | Path,
    source: str | Path,
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    registry: str | Path | None = None,
    registry_id: str | None = None,
    root: str | Path | None = None,
    report_out: str | Path | None = None,
    argv: list[str] | None = None,
) -> Produced:
    """Write the calibration set `out` for `model` from `source`; its report says how."""
    opts = options or BuildOptions()
    model, source, out = Path(model), Path(source), Path(out)
    _check_out(out, report_out, {"model": model, "source": source, "registry": registry, "calibration set": out})
    sigs = graph_inputs(load_model(model), model)
    if not sigs:
        raise UserError("the model has no inputs, so it needs no calibration set", subject=str(model))
    slots = [slot_for(s, opts.dims) for s in sigs]
    reg_plan = _registry_request(registry, registry_id, root, out, model)

    src = open_source(source, slots, columns=opts.columns, maps=opts.maps, image=opts.image)
    usable, idx, skipped = _rows(src, source, opts)
    arrays = src.take(idx)
    arrays = {s.name: _cast(arrays[s.name], s.sig.dtype, source, s.name) for s in slots}
    n = cal.validate(arrays, sigs, label=f"{out} (built from {source})")
    order = [s.name for s in sigs]
    data = npz_bytes(arrays, order)
    details = dict(src.details)
    names = details.pop("file_names", None)
    report: dict[str, Any] = {
        "calibration_set": {"path": str(out), "sha256": _sha256_bytes(data), "samples": n, "bytes": len(data)},
        "model": {"path": str(model), "sha256": sha256_file(model)},
        "source": {
            "kind": src.kind,
            "path": str(source),
            "sha256": src.sha256,
            "rows": src.rows,
            "mapping": src.mapping,
            **details,
        },
        "sampling": _sampling(opts, usable, idx, names),
        "skipped": skipped,
        "inputs": stats(arrays, order),
        "options": opts.to_json(),
        "registry": None,
        "run_provenance": _provenance(model, source, src.sha256, out, argv),
    }
    return _write(out, data, report, report_out, reg_plan)


def _check_out(out: Path, report_out: str | Path | None, reads: dict) -> None:
    """`out` names an .npz file, and it and the report can be written (before any source is read,
    not after), the report replacing none of the files read (`reads`)."""
    subject = f"{param('out')} {out}"
    if out.suffix.lower() != ".npz":
        raise UserError("a calibration set is an .npz file", subject=subject, fix="name it <something>.npz")
    if out.is_dir():
        raise UserError("is a folder", subject=subject, fix="give the .npz file's path")
    refuse_clobber(report_out, param("report_out"), reads)
    check_writable(out, subject)
    check_writable(report_out, f"{param('report_out')} {report_out}")


def _registry_request(
    registry: str | Path | None, registry_id: str | None, root: str | Path | None, out: Path, model: Path
) -> dict | None:
    """The registry edit `registry_id` asks for, planned and proved (None when none is asked)."""
    if registry_id:
        from ..registry import DEFAULT_REGISTRY

        return _registry_plan(Path(registry or DEFAULT_REGISTRY), registry_id, Path(root) if root else None, out, model)
    if registry is not None and registry_id is None:
        raise UserError(
            f"names the registry that {param('registry_id')} edits, and no {param('registry_id')} is given",
            subject=param("registry"),
            fix=f"add {param('registry_id')} ID, or leave out {param('registry')}",
        )
    return None


def _rows(src, source: Path, opts: BuildOptions) -> tuple[np.ndarray, np.ndarray, dict]:
    """The source's usable rows, the rows drawn from them, and the report's account of the rows
    skipped."""
    if src.rows < 1:
        raise UserError(
            "holds no rows",
            subject=str(source),
            fix="give a source with at least one sample (row)",
        )
    skip, skipped = _skip_plan(src, opts.drop_nonfinite)
    usable = np.flatnonzero(~skip)
    if not len(usable):
        raise UserError(
            f"every one of its {src.rows} row(s) is skipped "
            f"({', '.join(f'{k} {v}' for k, v in skipped['by_reason'].items())})",
            subject=str(source),
            fix="clean the source",
        )
    idx = sample_rows(usable, n=opts.n, seed=opts.seed, take_all=opts.take_all, label=str(source), total=src.rows)
    return usable, idx, skipped


def _sampling(opts: BuildOptions, usable: np.ndarray, idx: np.ndarray, names: list | None) -> dict:
    """The report's account of the draw: what was asked, and the rows (and image files) taken."""
    out = {
        "n": None if opts.take_all else (DEFAULT_N if opts.n is None else opts.n),
        "seed": opts.seed,
        "all": opts.take_all,
        "usable_rows": len(usable),
        "rows": [int(i) for i in idx[:1000]],
        "rows_truncated": len(idx) > 1000,
    }
    if names is not None:
        out["files"] = [names[int(i)] for i in idx[:1000]]
    return out


def _provenance(model: Path, source: Path, source_sha256: str, out: Path, argv: list[str] | None) -> dict:
    """The run's provenance; a source that is not one file (a folder of images) is named by its
    digest."""
    repo = find_repo_root(out.parent if out.parent.exists() else Path.cwd())
    inputs = {"model": model}
    if source.is_file():
        inputs["source"] = source
    prov = provenance.build(inputs=inputs, root=repo, argv=argv)
    if not source.is_file():
        prov["inputs"]["source"] = {"path": str(source), "sha256": source_sha256}
    return prov


def _write(out: Path, data: bytes, report: dict, report_out: str | Path | None, reg_plan: dict | None) -> Produced:
    """All or nothing: the set, then the report, then the registry (last, under its edit lock); a
    failure on the way puts the set and the report back as they were."""
    with all_or_nothing(out, report_out), locked(reg_plan["path"]) if reg_plan else contextlib.nullcontext():
        atomic_write_bytes(out, data)
        new = old = None
        if reg_plan:
            old, new = write_field(reg_plan["path"], reg_plan["index"], REGISTRY_FIELD, reg_plan["value"])
            report["registry"] = {
                "path": str(reg_plan["path"]),
                "id": reg_plan["id"],
                "field": REGISTRY_FIELD,
                "value": reg_plan["value"],
                "changed": new != old,
                "quant_mode": reg_plan["mode"],
            }
        result = Produced(output=out, report=report)
        if report_out:
            write_json(report_out, result)
        if reg_plan and new != old:
            assert new is not None
            atomic_write_text(reg_plan["path"], new)
    return result


def check_set(path: str | Path, model: str | Path, *, min_samples: int = 1) -> Produced:
    """Validate an existing set against a model (keys, dtypes, shapes, finite values, count)."""
    path, model = Path(path), Path(model)
    sigs = graph_inputs(load_model(model), model)
    arrays, n = cal.load(path, sigs)
    if n < min_samples:
        raise UserError(
            f"holds {n} sample(s), fewer than {param('min_samples')} {min_samples}",
            subject=str(path),
            fix=f"rebuild it with a larger {param('n')}",
        )
    return Produced(
        output=path,
        report={
            "calibration_set": {"path": str(path), "sha256": sha256_file(path), "samples": n},
            "model": {"path": str(model), "sha256": sha256_file(model)},
            "inputs": stats(arrays, [s.name for s in sigs]),
        },
    )


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
