"""Where calibration rows come from: a parquet feature cache, .npy/.npz arrays, or an image folder.

Every source becomes a `Source`: a row count, which column/key/file feeds which input, the rows
that hold NaN/inf/null values (and where), and `take(indices)`, which returns one array
`[len(indices), *sample]` per input. Array and parquet sources are read whole (their rows are
checked before sampling); an image folder decodes only the images sampled.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from ..optional import require
from ..paths import sha256_file
from .layout import Slot, fit

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Bad:
    """Rows of the source that hold a value a calibration set cannot: why and where."""

    reason: str        # "null", "nan" or "inf"
    where: str         # "column 'f2'", "array 'x'"
    mask: np.ndarray   # [rows] bool


@dataclass
class Source:
    kind: str                           # parquet | npz | npy | images
    path: Path
    sha256: str
    rows: int
    mapping: dict[str, list[str]]       # input name -> the columns / keys that feed it
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
            raise UserError(f"--map {item}: expected COLUMN=INPUT, e.g. --map ref_pixels={names[0]}")
        if inp not in names:
            raise UserError(f"--map {item}: '{inp}' is not an input of the model (inputs: {', '.join(names)})")
        out.append((col, inp))
    return out


def kind_of(path: Path) -> str:
    if path.is_dir():
        return "images"
    if not path.exists():
        raise UserError(f"{path}: source not found; pass --from a .parquet, .npy or .npz file or a folder of images")
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
    raise UserError(f"{path}: cannot tell what this source is; give a .parquet, .npy or .npz file "
                    "or a folder of PNG/JPEG images")


def open_source(path: Path, slots: list[Slot], *, columns=(), maps=(), image=None) -> Source:
    kind = kind_of(path)
    pairs = parse_map(maps, slots)
    if columns and pairs:
        raise UserError("--columns and --map exclude each other: --columns orders the columns of a "
                        "single input, --map COL=INPUT (repeated, in order) assigns columns to inputs")
    if kind != "parquet" and columns:
        raise UserError(f"{path}: --columns picks parquet columns; this source is {kind}")
    if kind == "parquet":
        return _parquet(path, slots, list(columns), pairs)
    if kind in ("npy", "npz"):
        return _arrays(path, kind, slots, pairs)
    if pairs:
        raise UserError(f"{path}: --map assigns parquet columns or .npz keys; an image folder feeds "
                        "the model's one image input")
    from .images import image_source
    return image_source(path, slots, image)


# -- shared row checks ------------------------------------------------------------------------

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


def _numeric(arr: np.ndarray, where: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{where} holds {arr.dtype} values; calibration data must be numbers")


def _same_rows(counts: dict[str, int], path: Path) -> int:
    if len(set(counts.values())) > 1:
        raise UserError(f"{path}: inputs get different row counts "
                        f"({', '.join(f'{k}={v}' for k, v in counts.items())}); give every input the same rows")
    return next(iter(counts.values()))


def _eager(arrays: dict[str, np.ndarray]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    return lambda idx: {name: arr[idx] for name, arr in arrays.items()}


# -- .npy / .npz -------------------------------------------------------------------------------

def _load_arrays(path: Path, kind: str) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as f:
            obj = np.load(f, allow_pickle=False)
            if isinstance(obj, np.lib.npyio.NpzFile):
                with obj:
                    return {k: obj[k] for k in obj.files}
            return {"": obj}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise UserError(f"{path}: holds Python objects (pickled); save plain numeric arrays") from None
        raise UserError(f"{path}: not a readable .{kind} ({' '.join(str(e).split())[:200]}); "
                        "save it with numpy.save / numpy.savez") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path}: not a readable .{kind} ({type(e).__name__}); "
                        "save it with numpy.save / numpy.savez") from None


def _arrays(path: Path, kind: str, slots: list[Slot], pairs) -> Source:
    arrays = _load_arrays(path, kind)
    names = [s.name for s in slots]
    if "" in arrays:  # a single .npy array
        if len(slots) != 1:
            raise UserError(f"{path}: one .npy array cannot feed {len(slots)} inputs ({', '.join(names)}); "
                            "save an .npz with one array per input name")
        if pairs:
            raise UserError(f"{path}: --map names .npz keys or parquet columns; a .npy holds one array")
        chosen = {names[0]: ""}
    else:
        chosen = {}
        for key, inp in pairs:
            if key not in arrays:
                raise UserError(f"{path}: --map {key}={inp}: no array '{key}' (keys: {', '.join(sorted(arrays))})")
            if inp in chosen:
                raise UserError(f"{path}: --map gives input '{inp}' two arrays ('{chosen[inp]}', '{key}'); "
                                "an .npz array feeds one input whole")
            chosen[inp] = key
        for n in names:
            if n not in chosen and n in arrays:
                chosen[n] = n
        missing = [n for n in names if n not in chosen]
        if missing:
            raise UserError(f"{path}: no array for input(s) {', '.join(missing)} (keys: "
                            f"{', '.join(sorted(arrays)) or 'none'}); name the arrays after the inputs "
                            "or pass --map KEY=INPUT")
    out, bad, counts = {}, [], {}
    for s in slots:
        key = chosen[s.name]
        arr = arrays[key]
        where = f"{path}: array '{key or s.name}'"
        _numeric(arr, where)
        if arr.ndim == 0:
            raise UserError(f"{where} is a single number; store rows as an array [rows, ...]")
        if len(arr) == 0:
            raise UserError(f"{where} holds no rows; a calibration set needs at least one sample")
        sample = fit(s, arr.shape[1:], where)
        out[s.name] = arr.reshape((len(arr),) + sample)
        bad += nonfinite(arr, f"array '{key or s.name}'")
        counts[s.name] = len(arr)
    used = set(chosen.values())
    return Source(kind, path, sha256_file(path), _same_rows(counts, path),
                  {k: [v or "(the .npy array)"] for k, v in chosen.items()}, _eager(out), bad,
                  {"keys": sorted(k for k in arrays if k), "ignored_keys": sorted(k for k in arrays if k and k not in used)})


# -- parquet -----------------------------------------------------------------------------------

def _parquet(path: Path, slots: list[Slot], columns: list[str], pairs) -> Source:
    pa = require("pyarrow", what=f"{path}: reading a parquet feature cache")
    pq = require("pyarrow.parquet", what=f"{path}: reading a parquet feature cache")
    try:
        pf = pq.ParquetFile(str(path))
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UserError(f"{path}: not a parquet file ({' '.join(str(e).split())[:160]}); "
                        "write the feature cache with pyarrow or pandas .to_parquet") from None
    have = list(schema.names)
    kinds = {n: _column_kind(pa, schema.field(n).type) for n in have}
    mapping = _parquet_mapping(path, slots, columns, pairs, have, kinds)
    needed = list(dict.fromkeys(c for cols in mapping.values() for c in cols))
    missing = [c for c in needed if c not in kinds]
    if missing:
        raise UserError(f"{path}: no column(s) {', '.join(repr(c) for c in missing)} (columns: "
                        f"{', '.join(have)}); fix --columns/--map")
    for c in needed:
        if kinds[c] is None:
            raise UserError(f"{path}: column '{c}' is {schema.field(c).type}; calibration columns must be "
                            "numbers or lists of numbers")
    try:
        table = pf.read(columns=needed)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read columns {', '.join(needed)} "
                        f"({' '.join(str(e).split())[:160]}); rewrite the cache") from None
    rows = table.num_rows
    if rows == 0:
        raise UserError(f"{path}: holds no rows; a calibration set needs at least one sample")
    values, bad = {}, []
    for c in needed:
        v, null_rows = _column_values(pa, table.column(c), f"{path}: column '{c}'", rows)
        values[c] = v
        if null_rows.any():
            bad.append(Bad("null", f"column '{c}'", null_rows))
        bad += nonfinite(v, f"column '{c}'")
    out = {}
    for s in slots:
        cols = mapping[s.name]
        where = f"{path}: input '{s.name}' from column(s) {', '.join(cols)}"
        if len(cols) == 1:
            data = values[cols[0]]
        else:
            data = np.concatenate([values[c].reshape(rows, -1).astype(np.float64) if values[c].dtype.kind == "f"
                                   else values[c].reshape(rows, -1) for c in cols], axis=1)
        fix = (f"pick the columns with {'--map COL=' + s.name if len(slots) > 1 else '--columns'}"
               if all(kinds[c] == "scalar" for c in cols) else None)
        sample = fit(s, data.shape[1:], where, fix=fix)
        out[s.name] = data.reshape((rows,) + sample)
    return Source("parquet", path, sha256_file(path), rows, mapping, _eager(out), bad,
                  {"columns": have, "row_groups": pf.metadata.num_row_groups})


def _column_kind(pa, t) -> str | None:
    """'scalar', 'array' or None (not usable) for an arrow type."""
    def numeric(x):
        return pa.types.is_integer(x) or pa.types.is_floating(x) or pa.types.is_boolean(x)
    if numeric(t):
        return "scalar"
    depth = 0
    while pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
        depth += 1
    return "array" if depth and numeric(t) else None


def _parquet_mapping(path, slots, columns, pairs, have, kinds) -> dict[str, list[str]]:
    names = [s.name for s in slots]
    if columns:
        if len(slots) != 1:
            raise UserError(f"{path}: the model has {len(slots)} inputs ({', '.join(names)}); --columns "
                            "fills a single input, assign columns with --map COL=INPUT instead")
        return {names[0]: list(columns)}
    mapping: dict[str, list[str]] = {}
    for col, inp in pairs:
        mapping.setdefault(inp, []).append(col)
    for n in names:
        if n not in mapping and n in kinds:
            mapping[n] = [n]
    if len(mapping) == len(names):
        return {n: mapping[n] for n in names}
    if len(slots) == 1:
        arrays = [c for c in have if kinds[c] == "array"]
        scalars = [c for c in have if kinds[c] == "scalar"]
        if len(arrays) == 1:
            return {names[0]: arrays}
        if not arrays and scalars:
            return {names[0]: scalars}
        raise UserError(f"{path}: cannot tell which columns feed input '{names[0]}' (array columns: "
                        f"{', '.join(arrays) or 'none'}; scalar columns: {', '.join(scalars) or 'none'}); "
                        "pick them with --columns")
    missing = [n for n in names if n not in mapping]
    raise UserError(f"{path}: no column(s) for input(s) {', '.join(missing)} (columns: {', '.join(have)}); "
                    "name columns after the inputs or pass --map COL=INPUT")


def _column_values(pa, chunked, where: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A column as `[rows, *cell shape]` and the rows that hold a null anywhere."""
    import pyarrow.compute as pc

    arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    if isinstance(arr, pa.ChunkedArray):  # zero chunks
        arr = pa.array([], type=chunked.type)
    row_null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
            or pa.types.is_fixed_size_list(arr.type)):
        vals = pc.fill_null(arr, False if pa.types.is_boolean(arr.type) else 0) if row_null.any() else arr
        return np.asarray(vals.to_numpy(zero_copy_only=False)), row_null
    keep = np.flatnonzero(~row_null)
    if rows and not len(keep):
        raise UserError(f"{where}: every row is null; fill the column or map another")
    cur = arr.filter(pa.array(~row_null)) if row_null.any() else arr
    parents = np.arange(len(cur))  # which kept row each element at this level belongs to
    shape: list[int] = []
    while pa.types.is_list(cur.type) or pa.types.is_large_list(cur.type) or pa.types.is_fixed_size_list(cur.type):
        if cur.null_count:
            first = int(keep[parents[np.flatnonzero(cur.is_null().to_numpy(zero_copy_only=False))[0]]])
            raise UserError(f"{where}: row {first} holds a null list inside its array; fill or drop it")
        lengths = np.asarray(pc.list_value_length(cur).to_numpy(zero_copy_only=False), dtype=np.int64)
        if len(lengths):
            odd = np.flatnonzero(lengths != lengths[0])
            if len(odd):
                a, b = int(keep[parents[0]]), int(keep[parents[odd[0]]])
                raise UserError(f"{where}: row {b} has {lengths[odd[0]]} values where row {a} has "
                                f"{lengths[0]}; every row needs the same width")
            shape.append(int(lengths[0]))
        else:
            shape.append(0)
        parents = np.repeat(parents, lengths)
        cur = cur.flatten()
    leaf_null = np.asarray(cur.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if leaf_null.any():
        row_null = row_null.copy()
        row_null[keep[np.unique(parents[leaf_null])]] = True
        cur = pc.fill_null(cur, False if pa.types.is_boolean(cur.type) else 0)
    leaf = np.asarray(cur.to_numpy(zero_copy_only=False)).reshape((len(keep),) + tuple(shape))
    if len(keep) == rows:
        return leaf, row_null
    full = np.zeros((rows,) + tuple(shape), dtype=leaf.dtype)
    full[keep] = leaf
    return full, row_null
