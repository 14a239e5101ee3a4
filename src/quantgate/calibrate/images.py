"""Images as model input: the options (`ImageOptions`, `--size`, `--mean`/`--std` parsing) and
decoding one file into a CHW float32 array.

`decode` applies the EXIF orientation, converts to the channel count (1 = L, 3 = RGB,
4 = RGBA) and brings the image to H x W by `fit`. Which files form a source, and scaling to
`range` and normalising, belong to the image-folder source (`sources.images`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import limits
from ..errors import UserError, one_line, param
from ..optional import require

FITS = ("resize", "crop", "resize-crop")
RANGES = ("0-1", "0-255")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class ImageOptions:
    channels: int | None = None
    size: tuple[int, int] | None = None  # (height, width)
    fit: str = "resize"
    value_range: str = "0-1"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def to_json(self) -> dict:
        return {
            "channels": self.channels,
            "size": list(self.size) if self.size else None,
            "fit": self.fit,
            "range": self.value_range,
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
        }


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
        raise UserError(
            "expected HEIGHTxWIDTH or one side",
            subject=f"{param('size')} {value}",
            fix=f"write it like {param('size')} 224x224 or {param('size')} 32",
        )
    return nums[0], nums[1]


def parse_floats(value: str | None, option: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        out = ()
    if not out or not all(math.isfinite(v) for v in out):
        raise UserError(
            "expected one number or one per channel, comma-separated",
            subject=f"{option} {value}",
            fix=f"write it like {option} 0.485,0.456,0.406",
        )
    return out


def decode(path: Path, c: int, h: int, w: int, fit: str) -> np.ndarray:
    Image = require("PIL.Image", what=f"{path.parent}: reading images")
    ImageOps = require("PIL.ImageOps", what=f"{path.parent}: reading images")
    cap = limits.IMAGE_PIXELS.value()
    # quantgate's own bound below stands in for Pillow's warning and error while this image is read
    pillows = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # type: ignore[attr-defined]
    try:
        with Image.open(path) as im:  # reads the header only
            if im.width * im.height > cap:
                raise UserError(
                    f"is {im.width}x{im.height} (WxH), {im.width * im.height:,} pixels, over the limit "
                    f"of {cap:,} pixels per image",
                    subject=str(path),
                    fix=limits.IMAGE_PIXELS.fix(),
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: keep the top 8 bits
                im = im.point(lambda v: v / 256).convert("L")
            im = im.convert(MODES[c])
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"not a decodable image ({type(e).__name__}: {one_line(e, 120)})",
            subject=str(path),
            fix="replace or remove it",
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillows  # type: ignore[attr-defined]
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
            raise UserError(
                f"is {iw}x{ih} (WxH), smaller than the {w}x{h} crop",
                subject=str(path),
                fix=f"use {param('fit')} resize or {param('fit')} resize-crop",
            )
        left, top = (iw - w) // 2, (ih - h) // 2
        im = im.crop((left, top, left + w, top + h))
    a = np.asarray(im, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    return a.transpose(2, 0, 1)  # HWC -> CHW
