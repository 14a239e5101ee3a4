"""`.npy` / `.npz` sources: one array per input, named after it or assigned with `--map KEY=INPUT`;
a lone `.npy` feeds a model with one input. Read whole; rows are checked before sampling.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError, param
from ...npz import read_npz
from ...paths import sha256_file
from ..layout import Slot, fit
from .base import Source, check_numeric, eager, nonfinite, same_rows


def array_source(path: Path, kind: str, slots: list[Slot], pairs) -> Source:
    # the content decides, not the name: a .npy saved as .npz (or the reverse) reads as what it is
    arrays = read_npz(
        path,
        what="source",
        missing_fix=f"pass {param('source')} a .parquet, .npy or .npz file or a folder of images",
        lone_npy=True,
    )
    names = [s.name for s in slots]
    if "" in arrays:  # a single .npy array
        if len(slots) != 1:
            raise UserError(
                f"one .npy array cannot feed {len(slots)} inputs ({', '.join(names)})",
                subject=str(path),
                fix="save an .npz with one array per input name",
            )
        if pairs:
            raise UserError(
                "names .npz keys or parquet columns; a .npy holds one array",
                subject=str(path),
                field=param("maps"),
                fix=f"leave {param('maps')} out",
            )
        chosen = {names[0]: ""}
    else:
        chosen = {}
        for key, inp in pairs:
            if key not in arrays:
                raise UserError(
                    f"no array '{key}' (keys: {', '.join(sorted(arrays))})",
                    subject=str(path),
                    field=f"{param('maps')} {key}={inp}",
                    fix="map one of those keys",
                )
            if inp in chosen:
                raise UserError(
                    f"gives input '{inp}' two arrays ('{chosen[inp]}', '{key}'); an .npz array feeds one input whole",
                    subject=str(path),
                    field=param("maps"),
                    fix="map one array to each input",
                )
            chosen[inp] = key
        for n in names:
            if n not in chosen and n in arrays:
                chosen[n] = n
        missing = [n for n in names if n not in chosen]
        if missing:
            raise UserError(
                f"no array for input(s) {', '.join(missing)} (keys: {', '.join(sorted(arrays)) or 'none'})",
                subject=str(path),
                fix=f"name the arrays after the inputs or pass {param('maps')} KEY=INPUT",
            )
    out, bad, counts = {}, [], {}
    for s in slots:
        key = chosen[s.name]
        arr = arrays[key]
        where = f"array '{key or s.name}'"
        check_numeric(arr, path, where)
        if arr.ndim == 0:
            raise UserError(
                "is a single number", subject=str(path), field=where, fix="store rows as an array [rows, ...]"
            )
        if len(arr) == 0:
            raise UserError("holds no rows", subject=str(path), field=where, fix="store at least one sample (row)")
        sample = fit(s, arr.shape[1:], path, where)
        out[s.name] = arr.reshape((len(arr), *sample))
        bad += nonfinite(arr, f"array '{key or s.name}'")
        counts[s.name] = len(arr)
    used = set(chosen.values())
    return Source(
        kind,
        path,
        sha256_file(path),
        same_rows(counts, path),
        {k: [v or "(the .npy array)"] for k, v in chosen.items()},
        eager(out),
        bad,
        {"keys": sorted(k for k in arrays if k), "ignored_keys": sorted(k for k in arrays if k and k not in used)},
    )
