"""`.npy` / `.npz` sources: one array per input, named after it or assigned with `--map KEY=INPUT`;
a lone `.npy` feeds a model with one input. Read whole; rows are checked before sampling.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...paths import sha256_file
from ..layout import Slot, fit
from .base import Source, check_numeric, eager, nonfinite, same_rows


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


def array_source(path: Path, kind: str, slots: list[Slot], pairs) -> Source:
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
        check_numeric(arr, where)
        if arr.ndim == 0:
            raise UserError(f"{where} is a single number; store rows as an array [rows, ...]")
        if len(arr) == 0:
            raise UserError(f"{where} holds no rows; a calibration set needs at least one sample")
        sample = fit(s, arr.shape[1:], where)
        out[s.name] = arr.reshape((len(arr),) + sample)
        bad += nonfinite(arr, f"array '{key or s.name}'")
        counts[s.name] = len(arr)
    used = set(chosen.values())
    return Source(kind, path, sha256_file(path), same_rows(counts, path),
                  {k: [v or "(the .npy array)"] for k, v in chosen.items()}, eager(out), bad,
                  {"keys": sorted(k for k in arrays if k), "ignored_keys": sorted(k for k in arrays if k and k not in used)})
