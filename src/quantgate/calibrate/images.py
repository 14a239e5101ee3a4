"""A folder of PNG/JPEG images as rows of an NCHW input.

Files are the folder's own `*.png`, `*.jpg`, `*.jpeg` (any case, not recursive, no dot files),
in name order; row i is the i-th file. Each sampled image is decoded (EXIF orientation applied),
converted to the channel count (1 = L, 3 = RGB, 4 = RGBA), brought to H x W by `fit`, scaled
to `range` and then, if given, normalised per channel as (x - mean) / std.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..optional import require
from ..paths import sha256_file
from .layout import Slot
from .sources import IMAGE_SUFFIXES, Source

FITS = ("resize", "crop", "resize-crop")
RANGES = ("0-1", "0-255")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class ImageOptions:
    channels: int | None = None
    size: tuple[int, int] | None = None      # (height, width)
    fit: str = "resize"
    value_range: str = "0-1"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def to_json(self) -> dict:
        return {"channels": self.channels, "size": list(self.size) if self.size else None, "fit": self.fit,
                "range": self.value_range, "mean": list(self.mean) if self.mean else None,
                "std": list(self.std) if self.std else None}


def parse_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        raise UserError(f"--size {value}: expected HEIGHTxWIDTH or one side, e.g. --size 224x224 or --size 32")
    return nums[0], nums[1]


def parse_floats(value: str | None, option: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        out = ()
    if not out or not all(math.isfinite(v) for v in out):
        raise UserError(f"{option} {value}: expected one number or one per channel, comma-separated, "
                        "e.g. 0.485,0.456,0.406")
    return out


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
    for p in files:
        h.update(p.name.encode("utf-8") + b"\0" + sha256_file(p).encode("ascii") + b"\n")
    return h.hexdigest()


def _plan(folder: Path, slots: list[Slot], opts: ImageOptions) -> tuple[Slot, int, int, int]:
    if len(slots) != 1:
        raise UserError(f"{folder}: an image folder feeds one input; the model has {len(slots)} "
                        f"({', '.join(s.name for s in slots)}); use a parquet cache or an .npz")
    s = slots[0]
    if len(s.template) != 3:
        raise UserError(f"{folder}: input {s.describe()} is not an NCHW image input; an image folder "
                        "feeds inputs shaped [batch, channels, height, width]")
    if s.sig.dtype.kind not in "fu":
        raise UserError(f"{folder}: input {s.describe()} is {s.sig.dtype}; images feed float or uint8 inputs")
    c_model, h_model, w_model = s.template
    c = opts.channels or c_model
    if c is None:
        raise UserError(f"{folder}: input {s.describe()} leaves the channel count open; pass --channels 1, 3 or 4")
    if c_model is not None and c != c_model:
        raise UserError(f"--channels {c}: input {s.describe()} takes {c_model} channels")
    if c not in _MODES:
        raise UserError(f"--channels {c}: images convert to 1 (grey), 3 (RGB) or 4 (RGBA) channels")
    h, w = opts.size or (h_model, w_model)
    if h is None or w is None:
        raise UserError(f"{folder}: input {s.describe()} leaves height/width open; pass --size HxW "
                        "(or --dim NAME=VALUE for each open dim)")
    for got, want, what in ((h, h_model, "height"), (w, w_model, "width")):
        if want is not None and got != want:
            raise UserError(f"--size {h}x{w}: input {s.describe()} has {what} {want}")
    for vals, option in ((opts.mean, "--mean"), (opts.std, "--std")):
        if vals is not None and len(vals) not in (1, c):
            raise UserError(f"{option}: give 1 value or {c} (one per channel), not {len(vals)}")
    if opts.std is not None and any(v == 0 for v in opts.std):
        raise UserError("--std: a standard deviation of 0 divides by zero; give non-zero values")
    if s.sig.dtype == np.uint8 and (opts.value_range != "0-255" or opts.mean or opts.std):
        raise UserError(f"{folder}: input {s.describe()} is uint8; use --range 0-255 without --mean/--std")
    return s, c, h, w


def _decode(path: Path, c: int, h: int, w: int, fit: str) -> np.ndarray:
    Image = require("PIL.Image", what=f"{path.parent}: reading images")
    ImageOps = require("PIL.ImageOps", what=f"{path.parent}: reading images")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: keep the top 8 bits
                im = im.point(lambda v: v / 256).convert("L")
            im = im.convert(_MODES[c])
    except UserError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        raise UserError(f"{path}: not a decodable image ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                        "replace or remove it") from None
    iw, ih = im.size
    if fit == "resize":
        if (iw, ih) != (w, h):
            im = im.resize((w, h), Image.Resampling.BILINEAR)
    else:
        if fit == "resize-crop":
            scale = max(w / iw, h / ih)
            nw, nh = max(w, math.ceil(iw * scale - 1e-9)), max(h, math.ceil(ih * scale - 1e-9))
            if (nw, nh) != (iw, ih):
                im = im.resize((nw, nh), Image.Resampling.BILINEAR)
            iw, ih = nw, nh
        elif iw < w or ih < h:
            raise UserError(f"{path}: is {iw}x{ih} (WxH), smaller than the {w}x{h} crop; use --fit resize "
                            "or --fit resize-crop")
        left, top = (iw - w) // 2, (ih - h) // 2
        im = im.crop((left, top, left + w, top + h))
    a = np.asarray(im, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    return a.transpose(2, 0, 1)  # HWC -> CHW


def image_source(folder: Path, slots: list[Slot], opts: ImageOptions | None) -> Source:
    opts = opts or ImageOptions()
    require("PIL.Image", what=f"{folder}: reading images")
    s, c, h, w = _plan(folder, slots, opts)
    files, other = image_files(folder)
    if not files:
        raise UserError(f"{folder}: holds no PNG/JPEG images ({', '.join(IMAGE_SUFFIXES)}); "
                        "put the images in the folder itself (subfolders are not read)")
    mean = np.asarray(opts.mean, dtype=np.float32).reshape(-1, 1, 1) if opts.mean else None
    std = np.asarray(opts.std, dtype=np.float32).reshape(-1, 1, 1) if opts.std else None

    def take(idx: np.ndarray) -> dict[str, np.ndarray]:
        out = np.empty((len(idx), c, h, w), dtype=np.float32)
        for j, i in enumerate(idx):
            x = _decode(files[int(i)], c, h, w, opts.fit)
            if opts.value_range == "0-1":
                x = x / np.float32(255.0)
            if mean is not None:
                x = x - mean
            if std is not None:
                x = x / std
            out[j] = x
        return {s.name: out}

    details = {"files": len(files), "other_files_ignored": other,
               "options": {**opts.to_json(), "channels": c, "size": [h, w]},
               "first_file": files[0].name, "last_file": files[-1].name}
    src = Source("images", folder, folder_digest(files), len(files), {s.name: [f"{folder.name}/*"]}, take,
                 [], details)
    src.details["file_names"] = [p.name for p in files]
    return src
