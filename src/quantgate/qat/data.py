"""Training data for QAT: `.npz` keys or parquet columns -> float32 arrays `[N, ...]`, and the
import of the user's model factory / data generator from `FILE.py:NAME` or `module:NAME`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, one_line
from ..npz import read_npz
from ..optional import require
from .config import DataSpec


@dataclass
class TrainingData:
    inputs: list[np.ndarray]  # one float32 [N, ...] per forward() argument
    target: np.ndarray  # float32 [N, ...]
    source: str

    @property
    def n(self) -> int:
        return int(self.target.shape[0])


def _as_f32(arr: np.ndarray, source: str, field: str) -> np.ndarray:
    if arr.dtype.kind not in "fiub":
        raise UserError(f"dtype {arr.dtype} is not numeric", subject=source, field=field, fix="store numbers")
    out = np.array(arr, dtype=np.float32, order="C", copy=True)  # writable, for torch.from_numpy
    if not np.all(np.isfinite(out)):
        raise UserError("holds NaN/inf values", subject=source, field=field, fix="drop or replace those rows")
    return out


def _npz(path: Path, spec: DataSpec, source: str) -> TrainingData:
    try:
        z = read_npz(path, what="training data", missing_fix="fix the path (relative to the config file)")
    except UserError as e:
        raise UserError(e.render(fix=False), subject=source, field="data.path", fix=e.fix) from None
    arrays = {}
    for what, key in [*((f"data.inputs[{i}]", k) for i, k in enumerate(spec.inputs)), ("data.target", spec.target)]:
        if key not in z:
            raise UserError(
                f"key '{key}' is not in {path.name} (it has {', '.join(sorted(z)) or 'no arrays'})",
                subject=source,
                field=what,
                fix="name one of those",
            )
        arrays[what] = _as_f32(z[key], source, f"{what} ('{key}' in {path.name})")
    ins = [arrays[f"data.inputs[{i}]"] for i in range(len(spec.inputs))]
    return TrainingData(ins, arrays["data.target"], str(path))


def _parquet(path: Path, spec: DataSpec, source: str) -> TrainingData:
    pq = require(
        "pyarrow.parquet", what=f"{source}: data.path: reading parquet", alternative="or save the data as .npz"
    )
    try:
        table = pq.read_table(path)
    except Exception as e:
        raise UserError(
            f"{path} is not a readable parquet file ({one_line(e, 160)})",
            subject=source,
            field="data.path",
            fix="write it with pyarrow or pandas .to_parquet, or save the data as .npz",
        ) from None
    cols = set(table.column_names)

    def column(name: str, what: str) -> np.ndarray:
        if name not in cols:
            raise UserError(
                f"column '{name}' is not in {path.name} (it has {', '.join(table.column_names)})",
                subject=source,
                field=what,
                fix="name one of those",
            )
        c = table.column(name)
        try:  # scalar columns convert directly; list columns row by row, then stack
            arr = c.to_numpy()
            if arr.dtype == object:
                arr = np.stack([np.asarray(v, dtype=np.float64) for v in arr])
        except Exception:
            arr = np.asarray([None], dtype=object)
        if arr.dtype == object:
            raise UserError(
                f"column '{name}' has ragged or non-numeric values",
                subject=source,
                field=what,
                fix="give every row the same number of numbers",
            )
        return _as_f32(arr, source, f"{what} (column '{name}')")

    def get(key, what: str) -> np.ndarray:
        if isinstance(key, tuple):  # several scalar columns stacked into a feature vector
            parts = [column(k, what) for k in key]
            bad = [k for k, p in zip(key, parts, strict=False) if p.ndim != 1]
            if bad:
                raise UserError(
                    f"column(s) {', '.join(bad)} are not scalar",
                    subject=source,
                    field=what,
                    fix="stack only scalar columns",
                )
            return np.stack(parts, axis=1)
        arr = column(key, what)
        return arr[:, None] if arr.ndim == 1 else arr

    ins = [get(k, f"data.inputs[{i}]") for i, k in enumerate(spec.inputs)]
    return TrainingData(ins, get(spec.target, "data.target"), str(path))


def load_file_data(spec: DataSpec, source: str) -> TrainingData:
    # callers come here only without a generator, and the config requires a path then
    assert spec.path is not None
    path = Path(spec.path)
    data = _parquet(path, spec, source) if path.suffix.lower() == ".parquet" else _npz(path, spec, source)
    check_counts(data, source)
    return data


def check_counts(data: TrainingData, source: str) -> None:
    counts = [a.shape[0] if a.ndim else 0 for a in (*data.inputs, data.target)]
    if any(a.ndim == 0 for a in (*data.inputs, data.target)):
        raise UserError(
            "an array is a scalar", subject=source, field="data", fix="store [N, ...] arrays with one row per sample"
        )
    if len(set(counts)) > 1:
        raise UserError(
            f"inputs and target have different row counts ({', '.join(map(str, counts))})",
            subject=source,
            field="data",
            fix="give every array N rows",
        )
    if counts[0] < 2:
        raise UserError(
            f"{counts[0]} sample(s), QAT needs at least 2",
            subject=source,
            field="data",
            fix="give more rows (a few hundred is typical)",
        )


def import_object(spec: str, base_dir: Path, *, key: str, source: str):
    """`FILE.py:NAME` (relative to the config) or `package.module:NAME` -> the object."""
    mod_part, _, name = spec.rpartition(":")
    try:
        if mod_part.endswith(".py"):
            file = Path(mod_part)
            file = file if file.is_absolute() else (base_dir / file)
            if not file.is_file():
                raise UserError(
                    f"file not found: {file}", subject=source, field=key, fix="fix the path (relative to the config)"
                )
            mod_name = f"quantgate_user_{file.stem}_{abs(hash(str(file.resolve()))) & 0xFFFFFFFF:x}"
            module = sys.modules.get(mod_name)
            if module is None:
                s = importlib.util.spec_from_file_location(mod_name, file)
                if s is None or s.loader is None:  # a .py file always gets one; reported as "cannot import"
                    raise ImportError(f"no module loader for {file}")
                module = importlib.util.module_from_spec(s)
                # the module's own folder first, so its sibling imports resolve
                sys.path.insert(0, str(file.resolve().parent))
                try:
                    sys.modules[mod_name] = module
                    s.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(mod_name, None)
                    raise
                finally:
                    sys.path.remove(str(file.resolve().parent))
        else:
            module = importlib.import_module(mod_part)
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"cannot import '{mod_part}' ({type(e).__name__}: {one_line(e, 160)})",
            subject=source,
            field=key,
            fix="fix the module path or install it",
        ) from None
    obj = getattr(module, name, None)
    if obj is None:
        raise UserError(
            f"'{mod_part}' has no '{name}'", subject=source, field=key, fix="name a class or function it defines"
        )
    if not callable(obj):
        raise UserError(
            f"'{spec}' is not callable", subject=source, field=key, fix="name an nn.Module class or a factory function"
        )
    return obj
