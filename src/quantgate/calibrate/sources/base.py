"""What every calibration source shares: the `Source` record, the `Bad` rows it reports, the
checks rows go through whatever their origin, `--map` parsing, and telling the kind of a
`--from` path (`kind_of`). The kinds themselves live in `arrays`, `parquet` and `images`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import UserError, param
from ...limits import file_kind, not_regular
from ..layout import Slot


@dataclass
class Bad:
    """Rows of the source that hold a value a calibration set cannot: why and where."""

    reason: str  # "null", "nan" or "inf"
    where: str  # "column 'f2'", "array 'x'"
    mask: np.ndarray  # [rows] bool


@dataclass
class Source:
    kind: str  # parquet | npz | npy | images
    path: Path
    sha256: str
    rows: int
    mapping: dict[str, list[str]]  # input name -> the columns / keys that feed it
    take: Callable[[np.ndarray], dict[str, np.ndarray]]
    bad: list[Bad] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def parse_map(items, slots: list[Slot]) -> list[tuple[str, str]]:
    """`--map COL=INPUT` pairs, in the order given; every INPUT must be a model input."""
    names = [s.name for s in slots]
    out = []
    for item in items or ():
        col, sep, inp = item.rpartition("=")
        if not sep or not col or not inp:
            raise UserError(
                "expected COLUMN=INPUT",
                subject=f"{param('maps')} {item}",
                fix=f"write it like {param('maps')} ref_pixels={names[0]}",
            )
        if inp not in names:
            raise UserError(
                f"'{inp}' is not an input of the model (inputs: {', '.join(names)})",
                subject=f"{param('maps')} {item}",
                fix="map to one of those inputs",
            )
        out.append((col, inp))
    return out


def kind_of(path: Path) -> str:
    found = file_kind(path)
    if found == "folder":
        return "images"
    if found not in ("file", "missing"):  # a named pipe would block the reader for ever
        raise not_regular(path, found, "calibration source")
    if found == "missing":
        raise UserError(
            "source not found",
            subject=str(path),
            fix=f"pass {param('source')} a .parquet, .npy or .npz file or a folder of images",
        )
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".npy", ".npz"):
        return suffix[1:]
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:4] == b"PAR1":
        return "parquet"
    if head == b"\x93NUMPY":
        return "npy"
    if head[:2] == b"PK":
        return "npz"
    raise UserError(
        "cannot tell what this source is",
        subject=str(path),
        fix="give a .parquet, .npy or .npz file or a folder of PNG/JPEG images",
    )


# -- row checks shared by the kinds -------------------------------------------------------------


def nonfinite(values: np.ndarray, where: str) -> list[Bad]:
    if values.dtype.kind != "f" or not len(values):
        return []
    flat = values.reshape(len(values), -1)
    out = []
    nan = np.isnan(flat).any(axis=1)
    inf = np.isinf(flat).any(axis=1)
    if nan.any():
        out.append(Bad("nan", where, nan))
    if inf.any():
        out.append(Bad("inf", where, inf))
    return out


def check_numeric(arr: np.ndarray, path: Path, where: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise UserError(
            f"holds {arr.dtype} values, calibration data must be numbers",
            subject=str(path),
            field=where,
            fix="store numbers (float, int or bool)",
        )


def same_rows(counts: dict[str, int], path: Path) -> int:
    if len(set(counts.values())) > 1:
        raise UserError(
            f"inputs get different row counts ({', '.join(f'{k}={v}' for k, v in counts.items())})",
            subject=str(path),
            fix="give every input the same rows",
        )
    return next(iter(counts.values()))


def eager(arrays: dict[str, np.ndarray]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """`take` for a source read whole: index the arrays already in memory."""
    return lambda idx: {name: arr[idx] for name, arr in arrays.items()}
