"""A folder of PNG/JPEG images as rows of an NCHW input.

Files are the folder's own `*.png`, `*.jpg`, `*.jpeg` (any case, not recursive, no dot files),
in name order; row i is the i-th file. Only the sampled images are decoded (`images.decode`),
then scaled to `range` and, if given, normalised per channel as (x - mean) / std.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...errors import UserError, param
from ...optional import require
from ...paths import sha256_file
from ...progress import counting
from ..images import MODES, ImageOptions, decode
from ..layout import Slot
from .base import Source

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(folder: Path) -> tuple[list[Path], int]:
    files, other = [], 0
    for p in sorted(folder.iterdir(), key=lambda q: q.name):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            files.append(p)
        else:
            other += 1
    return files, other


def folder_digest(files: list[Path]) -> str:
    """sha256 over the sorted file list: each line is `<name>\\0<sha256 of its bytes>\\n`."""
    h = hashlib.sha256()
    with counting("hashing images", len(files)) as tick:
        for p in files:
            h.update(p.name.encode("utf-8") + b"\0" + sha256_file(p).encode("ascii") + b"\n")
            tick()
    return h.hexdigest()


def _plan(folder: Path, slots: list[Slot], opts: ImageOptions) -> tuple[Slot, int, int, int]:
    if len(slots) != 1:
        raise UserError(
            f"an image folder feeds one input; the model has {len(slots)} ({', '.join(s.name for s in slots)})",
            subject=str(folder),
            fix="use a parquet cache or an .npz",
        )
    s = slots[0]
    if len(s.template) != 3:
        raise UserError(
            f"input {s.describe()} is not an NCHW image input; an image folder feeds inputs shaped "
            "[batch, channels, height, width]",
            subject=str(folder),
            fix="use a parquet cache or an .npz",
        )
    if s.sig.dtype.kind not in "fu":
        raise UserError(
            f"input {s.describe()} is {s.sig.dtype}; images feed float or uint8 inputs",
            subject=str(folder),
            fix="use a parquet cache or an .npz",
        )
    c_model, h_model, w_model = s.template
    c = opts.channels or c_model
    if c is None:
        raise UserError(
            f"input {s.describe()} leaves the channel count open",
            subject=str(folder),
            fix=f"pass {param('channels')} 1, 3 or 4",
        )
    if c_model is not None and c != c_model:
        raise UserError(
            f"input {s.describe()} takes {c_model} channels",
            subject=f"{param('channels')} {c}",
            fix=f"pass {param('channels')} {c_model} or leave it out",
        )
    if c not in MODES:
        raise UserError(
            "images convert to 1 (grey), 3 (RGB) or 4 (RGBA) channels",
            subject=f"{param('channels')} {c}",
            fix="pass 1, 3 or 4",
        )
    h, w = opts.size or (h_model, w_model)
    if h is None or w is None:
        raise UserError(
            f"input {s.describe()} leaves height/width open",
            subject=str(folder),
            fix=f"pass {param('size')} HxW (or {param('dims')} NAME=VALUE for each open dim)",
        )
    for got, want, what in ((h, h_model, "height"), (w, w_model, "width")):
        if want is not None and got != want:
            raise UserError(
                f"input {s.describe()} has {what} {want}",
                subject=f"{param('size')} {h}x{w}",
                fix=f"pass the model's {what} or leave {param('size')} out",
            )
    for vals, option in ((opts.mean, param("mean")), (opts.std, param("std"))):
        if vals is not None and len(vals) not in (1, c):
            raise UserError(f"{len(vals)} values", subject=option, fix=f"give 1 value or {c} (one per channel)")
    if opts.std is not None and any(v == 0 for v in opts.std):
        raise UserError("a standard deviation of 0 divides by zero", subject=param("std"), fix="give non-zero values")
    if s.sig.dtype == np.uint8 and (opts.value_range != "0-255" or opts.mean or opts.std):
        raise UserError(
            f"input {s.describe()} is uint8",
            subject=str(folder),
            fix=f"use {param('value_range')} 0-255 without {param('mean')}/{param('std')}",
        )
    return s, c, h, w


def image_source(folder: Path, slots: list[Slot], opts: ImageOptions | None) -> Source:
    opts = opts or ImageOptions()
    require("PIL.Image", what=f"{folder}: reading images")
    s, c, h, w = _plan(folder, slots, opts)
    files, other = image_files(folder)
    if not files:
        raise UserError(
            f"holds no PNG/JPEG images ({', '.join(IMAGE_SUFFIXES)})",
            subject=str(folder),
            fix="put the images in the folder itself (subfolders are not read)",
        )
    mean = np.asarray(opts.mean, dtype=np.float32).reshape(-1, 1, 1) if opts.mean else None
    std = np.asarray(opts.std, dtype=np.float32).reshape(-1, 1, 1) if opts.std else None

    def take(idx: np.ndarray) -> dict[str, np.ndarray]:
        out = np.empty((len(idx), c, h, w), dtype=np.float32)
        with counting("decoding images", len(idx)) as tick:
            for j, i in enumerate(idx):
                x = decode(files[int(i)], c, h, w, opts.fit)
                if opts.value_range == "0-1":
                    x = x / np.float32(255.0)
                if mean is not None:
                    x = x - mean
                if std is not None:
                    x = x / std
                out[j] = x
                tick()
        return {s.name: out}

    details = {
        "files": len(files),
        "other_files_ignored": other,
        "options": {**opts.to_json(), "channels": c, "size": [h, w]},
        "first_file": files[0].name,
        "last_file": files[-1].name,
    }
    src = Source("images", folder, folder_digest(files), len(files), {s.name: [f"{folder.name}/*"]}, take, [], details)
    src.details["file_names"] = [p.name for p in files]
    return src
