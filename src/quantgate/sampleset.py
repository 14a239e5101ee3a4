"""Sample sets (calibration sets, eval sets): a `.npz` with one array per model input name, each
`[N, ...]`, checked against the model's inputs; `EvalSet` reads an eval set a row at a time.

An array with the same rank as the input holds N along the input's first (batch) dimension
and is fed one row at a time (`x[i:i+1]`); an array with one more dimension holds N whole
input tensors (`x[i]`). Every mismatch with the model is one line naming the key and the fix.
Reading the file is `quantgate.npz.read_npz`, shared with the other `.npz` callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserError
from .npz import NpzRows, read_npz
from .onnxio import TensorSig

if TYPE_CHECKING:
    from .registry import Entry


def feed_shape(sig: TensorSig, arr: np.ndarray) -> tuple[int, bool]:
    """(sample count, whole-tensor-per-row?) for an array against an input, or raise."""
    rank = len(sig.dims)
    if arr.ndim == rank + 1:
        return arr.shape[0], True
    if arr.ndim == rank and rank >= 1:
        return arr.shape[0], False
    raise ValueError(
        f"has {arr.ndim} dims; expected {rank} (N along the batch dim) or {rank + 1} "
        f"(N whole inputs) for input dims {list(sig.dims)}"
    )


def validate(arrays: dict, inputs: list[TensorSig], *, label: str, values: bool = True) -> int:
    """Check a set against the model's inputs; return the sample count. `arrays` may hold only
    what a `.npy` header says (shape, ndim, dtype: `npz.NpzRows.headers`); then, or without
    `values`, the values are left to whoever reads them (`check_row`)."""
    names = [s.name for s in inputs]
    missing = [n for n in names if n not in arrays]
    extra = sorted(set(arrays) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(m) for m in missing))
        if extra:
            parts.append("unexpected " + ", ".join(repr(e) for e in extra))
        raise UserError(
            f"keys must equal the model's input names ({', '.join(names)}): {'; '.join(parts)}",
            subject=label,
            fix="rename the arrays to the input names",
        )
    counts = {}
    for s in inputs:
        arr = arrays[s.name]
        where = f"'{s.name}'"
        if arr.dtype != s.dtype:
            raise UserError(
                f"is {arr.dtype}, the model input is {s.dtype}",
                subject=label,
                field=where,
                fix=f"save it as array.astype(numpy.{s.dtype})",
            )
        try:
            n, whole = feed_shape(s, arr)
        except ValueError as e:
            raise UserError(
                str(e), subject=label, field=where, fix="store N samples of the input's shape, N first"
            ) from None
        if n < 1:
            raise UserError("has no samples (N = 0)", subject=label, field=where, fix="store at least one sample")
        per_sample = arr.shape[1:] if whole else (1, *arr.shape[1:])
        model_dims = s.dims if whole else (1, *tuple(s.dims[1:]))
        for i, (want, got) in enumerate(zip(model_dims, per_sample, strict=False)):
            if isinstance(want, int) and want != got and not (not whole and i == 0):
                raise UserError(
                    f"has shape {list(arr.shape)}: dim {i} of each sample is {got}, "
                    f"the model wants {want} (input dims {list(s.dims)})",
                    subject=label,
                    field=where,
                    fix="store samples of the input's shape",
                )
        if not whole and isinstance(s.dims[0], int) and s.dims[0] != 1:
            raise UserError(
                f"the input's first dim is fixed at {s.dims[0]}",
                subject=label,
                field=where,
                fix=f"store N whole inputs as an array of shape [N, {', '.join(map(str, s.dims))}]",
            )
        if values and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise UserError(
                f"holds {bad} NaN/inf values", subject=label, field=where, fix="drop or replace those samples"
            )
        counts[s.name] = n
    if len(set(counts.values())) > 1:
        raise UserError(
            f"inputs have different sample counts ({', '.join(f'{k}={v}' for k, v in counts.items())})",
            subject=label,
            fix="give every input N rows",
        )
    return next(iter(counts.values()))


def feeds(arrays: dict[str, np.ndarray], inputs: list[TensorSig], start: int = 0, stop: int | None = None):
    """Yield one feed dict per sample (samples `start` to `stop`, all by default)."""
    n = None
    layout = {}
    for s in inputs:
        cnt, whole = feed_shape(s, arrays[s.name])
        layout[s.name] = whole
        n = cnt
    for i in range(start, (n or 0) if stop is None else min(stop, n or 0)):
        # arrays[name][i] of a [N] array is a numpy scalar; ONNX Runtime takes a 0-d array for a scalar input
        yield {
            name: (np.asarray(arrays[name][i]) if whole else arrays[name][i : i + 1]) for name, whole in layout.items()
        }


def row_feed(row: dict[str, np.ndarray], headers: dict, inputs: list[TensorSig], *, label: str, i: int) -> dict:
    """One sample's feed from row i of each array (`npz.NpzRows.rows`), laid out as `feeds`
    lays them out, its float values checked finite."""
    feed = {}
    for s in inputs:
        v = row[s.name]
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise UserError(
                f"holds NaN/inf values in sample {i}",
                subject=label,
                field=f"'{s.name}'",
                fix="drop or replace those samples",
            )
        _n, whole = feed_shape(s, headers[s.name])
        feed[s.name] = np.asarray(v) if whole else v[None, ...]
    return feed


def load(path: str | Path, inputs: list[TensorSig]) -> tuple[dict[str, np.ndarray], int]:
    arrays = read_npz(path)
    return arrays, validate(arrays, inputs, label=str(path))


def reader(arrays: dict[str, np.ndarray], inputs: list[TensorSig], *, chunk: int | None = None):
    """An onnxruntime `CalibrationDataReader` over a validated set. It is consumed once:
    make a fresh one for every pass.

    With `chunk`, it also serves ONNX Runtime's strided calibration (`CalibStridedMinMax`:
    `quantize_static` asks for `len(reader)` samples `chunk` at a time, through `set_range`, and
    the calibrator merges each chunk's ranges before the next). ONNX Runtime wants a length that
    `chunk` divides: the length is rounded up and the last range cut at the set's end."""
    from onnxruntime.quantization import CalibrationDataReader

    n = feed_shape(inputs[0], arrays[inputs[0].name])[0] if chunk and inputs else 0  # a validated set

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = feeds(arrays, inputs)

        def get_next(self):
            return next(self._it, None)

        def __len__(self) -> int:
            assert chunk
            return -(-n // chunk) * chunk

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = feeds(arrays, inputs, start_index, min(end_index, n))

    return _Reader()


@dataclass
class EvalSet:
    """The entry's eval set, checked against the model from its headers and read a row at a time
    whenever its feeds are asked for: never held whole, whatever its length."""

    path: Path
    label: str
    inputs: list
    headers: dict
    rows: int

    @classmethod
    def open(cls, path: Path, label: str, ins: list[TensorSig]) -> EvalSet:
        """The eval set at `path` (`label`: as the registry names it), checked against the model's
        inputs `ins` from its headers alone."""
        fix = "fix the path (it is relative to the repository root) or save the inputs with numpy.savez"
        with NpzRows(path, what="eval set", missing_fix=fix) as z:
            headers = dict(z.headers)
        rows = validate(headers, ins, label=label, values=False)
        return cls(path, label, list(ins), headers, rows)

    @classmethod
    def of_entry(cls, e: Entry, ins: list[TensorSig]) -> EvalSet:
        """A registry entry's eval set (`quant_eval_set`, which excludes `quant_inputs`)."""
        if e.input_spec:
            raise UserError("quant_eval_set and quant_inputs exclude each other", subject=e.id, fix="keep one")
        assert e.eval_path is not None
        return cls.open(e.eval_path, str(e.raw["quant_eval_set"]), ins)

    def shape(self, sig) -> list[int]:
        """One sample's shape of input `sig` as fed."""
        h = self.headers[sig.name]
        _n, whole = feed_shape(sig, h)
        return list(h.shape[1:]) if whole else [1, *h.shape[1:]]

    def feeds(self) -> Iterator[dict]:
        with NpzRows(self.path, what="eval set", missing_fix="") as z:
            names = [s.name for s in self.inputs]
            for i, row in enumerate(z.rows(names)):
                yield row_feed(row, self.headers, self.inputs, label=self.label, i=i)
