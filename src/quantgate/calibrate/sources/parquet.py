"""Parquet feature-cache sources: which columns feed which input (`--columns`, `--map`, names
or the one array column), each column as `[rows, *cell]` with its null rows, read whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import limits
from ...errors import UserError, one_line, param
from ...optional import require
from ...paths import sha256_file
from ..layout import Slot, fit
from .base import Bad, Source, eager, nonfinite


def parquet_source(path: Path, slots: list[Slot], columns: list[str], pairs) -> Source:
    pa = require("pyarrow", what=f"{path}: reading a parquet feature cache")
    pq = require("pyarrow.parquet", what=f"{path}: reading a parquet feature cache")
    try:
        pf = pq.ParquetFile(str(path))
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UserError(
            f"not a parquet file ({one_line(e, 160)})",
            subject=str(path),
            fix="write the feature cache with pyarrow or pandas .to_parquet",
        ) from None
    have = list(schema.names)
    kinds = {n: _column_kind(pa, schema.field(n).type) for n in have}
    mapping = _parquet_mapping(path, slots, columns, pairs, have, kinds)
    needed = _needed_columns(path, schema, mapping, kinds)
    _check_size(path, pf, needed)
    try:
        table = pf.read(columns=needed)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UserError(
            f"cannot read columns {', '.join(needed)} ({one_line(e, 160)})",
            subject=str(path),
            fix="rewrite the cache",
        ) from None
    rows = table.num_rows
    if rows == 0:
        raise UserError("holds no rows", subject=str(path), fix="write at least one sample (row)")
    values, bad = {}, []
    for c in needed:
        v, null_rows = _column_values(pa, table.column(c), path, f"column '{c}'", rows)
        values[c] = v
        if null_rows.any():
            bad.append(Bad("null", f"column '{c}'", null_rows))
        bad += nonfinite(v, f"column '{c}'")
    out = {}
    for s in slots:
        cols = mapping[s.name]
        where = f"input '{s.name}' from column(s) {', '.join(cols)}"
        if len(cols) == 1:
            data = values[cols[0]]
        else:
            data = np.concatenate(
                [
                    values[c].reshape(rows, -1).astype(np.float64)
                    if values[c].dtype.kind == "f"
                    else values[c].reshape(rows, -1)
                    for c in cols
                ],
                axis=1,
            )
        fix = (
            f"pick the columns with {param('maps') + ' COL=' + s.name if len(slots) > 1 else param('columns')}"
            if all(kinds[c] == "scalar" for c in cols)
            else None
        )
        sample = fit(s, data.shape[1:], path, where, fix=fix)
        out[s.name] = data.reshape((rows, *sample))
    return Source(
        "parquet",
        path,
        sha256_file(path),
        rows,
        mapping,
        eager(out),
        bad,
        {"columns": have, "row_groups": pf.metadata.num_row_groups},
    )


def _needed_columns(path: Path, schema, mapping: dict[str, list[str]], kinds: dict) -> list[str]:
    """The columns `mapping` reads, each once, in order: every one present and numeric."""
    needed = list(dict.fromkeys(c for cols in mapping.values() for c in cols))
    missing = [c for c in needed if c not in kinds]
    if missing:
        raise UserError(
            f"no column(s) {', '.join(repr(c) for c in missing)} (columns: {', '.join(schema.names)})",
            subject=str(path),
            fix=f"fix {param('columns')}/{param('maps')}",
        )
    for c in needed:
        if kinds[c] is None:
            raise UserError(
                f"is {schema.field(c).type}, calibration columns must be numbers or lists of numbers",
                subject=str(path),
                field=f"column '{c}'",
                fix="feed another column, or store this one as numbers",
            )
    return needed


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
            raise UserError(
                f"the model has {len(slots)} inputs ({', '.join(names)}); {param('columns')} fills a single input",
                subject=str(path),
                fix=f"assign columns with {param('maps')} COL=INPUT instead",
            )
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
        raise UserError(
            f"cannot tell which columns feed input '{names[0]}' (array columns: "
            f"{', '.join(arrays) or 'none'}; scalar columns: {', '.join(scalars) or 'none'})",
            subject=str(path),
            fix=f"pick them with {param('columns')}",
        )
    missing = [n for n in names if n not in mapping]
    raise UserError(
        f"no column(s) for input(s) {', '.join(missing)} (columns: {', '.join(have)})",
        subject=str(path),
        fix=f"name columns after the inputs or pass {param('maps')} COL=INPUT",
    )


def _column_values(pa, chunked, path: Path, where: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A column as `[rows, *cell shape]` and the rows that hold a null anywhere."""
    import pyarrow.compute as pc

    arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    if isinstance(arr, pa.ChunkedArray):  # zero chunks
        arr = pa.array([], type=chunked.type)
    row_null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        vals = pc.fill_null(arr, False if pa.types.is_boolean(arr.type) else 0) if row_null.any() else arr
        return np.asarray(vals.to_numpy(zero_copy_only=False)), row_null
    keep = np.flatnonzero(~row_null)
    if rows and not len(keep):
        raise UserError("every row is null", subject=str(path), field=where, fix="fill the column or map another")
    cur = arr.filter(pa.array(~row_null)) if row_null.any() else arr
    parents = np.arange(len(cur))  # which kept row each element at this level belongs to
    shape: list[int] = []
    while pa.types.is_list(cur.type) or pa.types.is_large_list(cur.type) or pa.types.is_fixed_size_list(cur.type):
        if cur.null_count:
            first = int(keep[parents[np.flatnonzero(cur.is_null().to_numpy(zero_copy_only=False))[0]]])
            raise UserError(
                f"row {first} holds a null list inside its array", subject=str(path), field=where, fix="fill or drop it"
            )
        lengths = np.asarray(pc.list_value_length(cur).to_numpy(zero_copy_only=False), dtype=np.int64)
        if len(lengths):
            odd = np.flatnonzero(lengths != lengths[0])
            if len(odd):
                a, b = int(keep[parents[0]]), int(keep[parents[odd[0]]])
                raise UserError(
                    f"row {b} has {lengths[odd[0]]} values where row {a} has {lengths[0]}",
                    subject=str(path),
                    field=where,
                    fix="give every row the same width",
                )
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
    leaf = np.asarray(cur.to_numpy(zero_copy_only=False)).reshape((len(keep), *tuple(shape)))
    if len(keep) == rows:
        return leaf, row_null
    full = np.zeros((rows, *tuple(shape)), dtype=leaf.dtype)
    full[keep] = leaf
    return full, row_null


def _check_size(path: Path, pf, columns: list[str]) -> None:
    """Refuse columns whose uncompressed size (from the file's metadata, before any is read) is
    over the array limit: a small, well-compressed cache can expand to more than the machine has."""
    meta = pf.metadata
    wanted = set(columns)
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chunk.path_in_schema.split(".")[0] in wanted:
                total += chunk.total_uncompressed_size
    cap = limits.ARRAY_BYTES.value()
    if total > cap:
        raise UserError(
            f"column(s) {', '.join(columns)} hold {total:,} bytes uncompressed, over the limit of {cap:,} bytes",
            subject=str(path),
            fix=f"{limits.ARRAY_BYTES.fix()}, or write a smaller cache",
        )
