"""Where calibration rows come from: a parquet feature cache, .npy/.npz arrays, or an image folder.

Every source becomes a `Source`: a row count, which column/key/file feeds which input, the rows
that hold NaN/inf/null values (and where), and `take(indices)`, which returns one array
`[len(indices), *sample]` per input. Array and parquet sources are read whole (their rows are
checked before sampling); an image folder decodes only the images sampled.

`open_source` owns the dispatch: it sits here, above `base` and the kinds, so that no module of
the package imports one that imports it back.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError, param
from ..images import ImageOptions
from ..layout import Slot
from .arrays import array_source
from .base import Bad, Source, kind_of, nonfinite, parse_map
from .images import IMAGE_SUFFIXES, folder_digest, image_files, image_source
from .parquet import parquet_source

__all__ = [
    "IMAGE_SUFFIXES",
    "Bad",
    "Source",
    "array_source",
    "folder_digest",
    "image_files",
    "image_source",
    "kind_of",
    "nonfinite",
    "open_source",
    "parquet_source",
    "parse_map",
]


def open_source(path: Path, slots: list[Slot], *, columns=(), maps=(), image: ImageOptions | None = None) -> Source:
    kind = kind_of(path)
    pairs = parse_map(maps, slots)
    if columns and pairs:
        raise UserError(
            f"{param('columns')} and {param('maps')} exclude each other: {param('columns')} orders the columns of a "
            f"single input, {param('maps')} COL=INPUT (repeated, in order) assigns columns to inputs",
            fix="give one of them",
        )
    if kind != "parquet" and columns:
        raise UserError(
            f"picks parquet columns; this source is {kind}",
            subject=str(path),
            field=param("columns"),
            fix=f"leave {param('columns')} out",
        )
    if kind == "parquet":
        return parquet_source(path, slots, list(columns), pairs)
    if kind in ("npy", "npz"):
        return array_source(path, kind, slots, pairs)
    if pairs:
        raise UserError(
            "assigns parquet columns or .npz keys; an image folder feeds the model's one image input",
            subject=str(path),
            field=param("maps"),
            fix=f"leave {param('maps')} out",
        )
    return image_source(path, slots, image)
