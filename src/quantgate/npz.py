"""Reading `.npz` files: the one reader for calibration sets, `calibrate build` sources and QAT
training data.

It refuses what numpy would half-read or read unsafely: pickled objects, a single `.npy` array
saved under an `.npz` name (unless the caller takes one), and anything without a zip header;
each refusal is one line naming the file and the fix.

It also refuses what would take the machine's memory: before any array is loaded, every member's
`.npy` header is read and the bytes it would take are added up; a file whose arrays come to more
than `limits.MAX_ARRAY_BYTES` (`QUANTGATE_MAX_ARRAY_BYTES`), a zip of more than
`limits.MAX_NPZ_MEMBERS` members or one declaring more uncompressed bytes than its arrays can
need, and a header promising more data than its member holds are refused unread. Only regular
files are opened (a named pipe would block the reader for ever).
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from . import limits
from .errors import UserError, one_line
from .limits import file_kind, not_regular

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
BUILD_HINT = "fix the path or build the set with 'quantgate calibrate build'"
# What a member may hold beyond its array: numpy's header (at most 10,000 characters) and padding.
_HEADER_SLACK = 16 << 10


class _Header:
    """What a `.npy` header promises: shape, dtype, and where its data starts."""

    def __init__(self, shape: tuple, dtype: np.dtype, data_offset: int, fortran: bool = False):
        self.shape, self.dtype, self.data_offset, self.fortran = shape, dtype, data_offset, fortran
        self.nbytes = math.prod(shape) * dtype.itemsize
        self.ndim = len(shape)

    def describe(self) -> str:
        return f"shape {list(self.shape)}, {self.dtype}"


def _pickled(path: Path) -> UserError:
    return UserError("holds Python objects (pickled)", subject=str(path), fix="save plain numeric arrays")


def _read_header(f: IO[bytes], path: Path, member: str | None, save: str) -> _Header:
    """The header of the `.npy` at `f`'s start (a file, or a zip member), refusing what numpy
    would refuse later or could not allocate."""
    where = f"member {member!r}" if member is not None else None
    try:
        version = np.lib.format.read_magic(f)
    except ValueError:
        raise UserError("not a .npy array", subject=str(path), field=where, fix=f"save it with {save}") from None
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise UserError(
            f"a .npy format version {version[0]}.{version[1]} header",
            subject=str(path),
            field=where,
            fix=f"save it with {save}",
        )
    if dtype.hasobject:
        raise _pickled(path)
    if any(d < 0 for d in shape):
        raise UserError(
            f"a negative dimension in shape {list(shape)}", subject=str(path), field=where, fix=f"save it with {save}"
        )
    return _Header(tuple(shape), dtype, f.tell(), bool(fortran) and len(shape) > 1)


def _field(key: str | None) -> str | None:
    return None if key is None else f"array {key!r}"


def _check_size(path: Path, key: str | None, h: _Header, total: int, cap: int) -> None:
    if h.nbytes > cap or total > cap:
        amount = (
            f"is {h.nbytes:,} bytes once loaded ({h.describe()})"
            if h.nbytes > cap
            else f"brings the file's arrays to {total:,} bytes once loaded"
        )
        raise UserError(
            f"{amount}, over the limit of {cap:,} bytes per file",
            subject=str(path),
            field=_field(key),
            fix=limits.ARRAY_BYTES.fix(),
        )


def _truncated(path: Path, key: str | None, h: _Header, holds: int, save: str) -> UserError:
    return UserError(
        f"its header promises {h.nbytes:,} bytes of data ({h.describe()}), the file holds {holds:,}",
        subject=str(path),
        field=_field(key),
        fix=f"save it again with {save}",
    )


def _open_regular(path: Path, what: str) -> IO[bytes]:
    """`path` opened for reading without blocking, refused unless it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise not_regular(path, "not a regular file", what)
    return f


def _read_npy(f: IO[bytes], path: Path, cap: int, save: str) -> np.ndarray:
    h = _read_header(f, path, None, save)
    _check_size(path, None, h, h.nbytes, cap)
    holds = os.fstat(f.fileno()).st_size - h.data_offset
    if holds < h.nbytes:
        raise _truncated(path, None, h, max(holds, 0), save)
    f.seek(0)
    return np.lib.format.read_array(f, allow_pickle=False)


def _read_zip(f: IO[bytes], path: Path, cap: int, save: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(f) as z:
        plan = _plan_zip(z, path, cap, save)
        out: dict[str, np.ndarray] = {}
        for key, (info, _h) in plan.items():
            with z.open(info) as m:
                out[key] = np.lib.format.read_array(m, allow_pickle=False)
        return out


def _plan_zip(z: zipfile.ZipFile, path: Path, cap: int, save: str) -> dict[str, tuple[zipfile.ZipInfo, _Header]]:
    """Every member's key, zip entry and `.npy` header, checked against the bounds before any
    array is read."""
    infos = z.infolist()
    most = limits.NPZ_MEMBERS.value()
    if len(infos) > most:
        raise UserError(
            f"holds {len(infos):,} members, over the limit of {most:,}",
            subject=str(path),
            fix=f"save one array per input with {save}, or {limits.NPZ_MEMBERS.fix()}",
        )
    declared = sum(i.file_size for i in infos)
    if declared > cap + _HEADER_SLACK * len(infos):
        raise UserError(
            f"declares {declared:,} bytes uncompressed, over the limit of {cap:,} bytes per file",
            subject=str(path),
            fix=limits.ARRAY_BYTES.fix(),
        )
    plan: dict[str, tuple[zipfile.ZipInfo, _Header]] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        key = name[:-4] if name.endswith(".npy") else name  # numpy's key for the member
        if key in seen:
            raise UserError(f"holds two arrays named {key!r}", subject=str(path), fix=f"save it again with {save}")
        seen.add(key)
        with z.open(info) as m:
            h = _read_header(m, path, name, save)
        total += h.nbytes
        _check_size(path, key, h, total, cap)
        if info.file_size - h.data_offset < h.nbytes:
            raise _truncated(path, key, h, max(info.file_size - h.data_offset, 0), save)
        plan[key] = (info, h)
    return plan


def read_npz(
    path: str | Path, *, what: str = "calibration set", missing_fix: str = BUILD_HINT, lone_npy: bool = False
) -> dict[str, np.ndarray]:
    """Every array of the `.npz` at `path`, by key, in the file's order.

    `what` and `missing_fix` word the not-found message for the caller ("calibration set",
    "training data"). With `lone_npy`, a single `.npy` array is read too, whatever the file is
    named, and comes back under the key "". Arrays over `limits.ARRAY_BYTES` are refused before
    they are read.
    """
    path = Path(path)
    kind = file_kind(path)
    if kind in ("missing", "folder"):
        raise UserError(f"{what} not found", subject=str(path), fix=missing_fix or None)
    if kind != "file":
        raise not_regular(path, kind, what)
    kinds, header, save = (
        (".npy or .npz", "no .npy or zip header", "numpy.save / numpy.savez")
        if lone_npy
        else (".npz", "no zip header", "numpy.savez")
    )
    cap = limits.ARRAY_BYTES.value()
    try:
        with _open_regular(path, what) as f:
            magic = f.read(6)
            f.seek(0)
            if magic.startswith(NPY_MAGIC):
                if not lone_npy:
                    raise UserError(
                        "a single .npy array, not an .npz",
                        subject=str(path),
                        fix="save one array per input name with numpy.savez(path, <input_name>=array)",
                    )
                return {"": _read_npy(f, path, cap, save)}
            if not magic.startswith(ZIP_MAGIC):
                raise UserError(f"not a readable {kinds} ({header})", subject=str(path), fix=f"save it with {save}")
            return _read_zip(f, path, cap, save)
    except UserError:
        raise
    except ValueError as e:
        # numpy says "pickle" both for object arrays and for content it does not recognise
        if "pickle" in str(e).lower():
            raise _pickled(path) from None
        raise UserError(
            f"not a readable {kinds} ({one_line(e, 200)})", subject=str(path), fix=f"save it with {save}"
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(
            f"not a readable {kinds} ({type(e).__name__})", subject=str(path), fix=f"save it with {save}"
        ) from None
    except MemoryError:  # within the bounds, but not within this machine's (or container's) memory
        raise UserError(
            f"the {what}'s arrays do not fit in the memory this process may use",
            subject=str(path),
            fix="use a smaller set, or run where more memory is free",
        ) from None


def _unreadable(path: Path, e: Exception) -> UserError:
    return UserError(f"not a readable .npz ({type(e).__name__})", subject=str(path), fix="save it with numpy.savez")


class NpzRows:
    """An `.npz` read one row (index along the first axis) at a time, so a set of any length is
    never held whole: `headers` (each array's shape and dtype, checked against the bounds as
    `read_npz` checks them) before anything is read, then `rows()`. Use it as a context manager."""

    def __init__(self, path: str | Path, *, what: str, missing_fix: str):
        self.path = Path(path)
        kind = file_kind(self.path)
        if kind in ("missing", "folder"):
            raise UserError(f"{what} not found", subject=str(self.path), fix=missing_fix or None)
        if kind != "file":
            raise not_regular(self.path, kind, what)
        self._f = _open_regular(self.path, what)
        try:
            if not self._f.read(6).startswith(ZIP_MAGIC):
                raise UserError(
                    "not a readable .npz (no zip header)", subject=str(self.path), fix="save it with numpy.savez"
                )
            self._f.seek(0)
            self._z = zipfile.ZipFile(self._f)
            self._plan = _plan_zip(self._z, self.path, limits.ARRAY_BYTES.value(), "numpy.savez")
        except UserError:
            self._f.close()
            raise
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
            self._f.close()
            raise _unreadable(self.path, e) from None
        self.headers = {k: h for k, (_i, h) in self._plan.items()}

    def __enter__(self) -> NpzRows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._z.close()
        self._f.close()

    def rows(self, keys: list[str]) -> Iterator[dict[str, np.ndarray]]:
        """Row i of each array in `keys`, for i = 0, 1, ... (an array of shape [N, ...] gives N
        rows of shape [...]; every array must have the same N)."""
        streams: dict[str, tuple[IO[bytes] | None, np.ndarray | None, _Header]] = {}
        try:
            for k in keys:
                info, h = self._plan[k]
                if h.fortran or not h.shape:  # not row-contiguous: this array is read whole
                    whole = np.lib.format.read_array(self._z.open(info), allow_pickle=False)
                    streams[k] = (None, whole, h)
                    continue
                handle = self._z.open(info)
                handle.read(h.data_offset)
                streams[k] = (handle, None, h)
            n = min((h.shape[0] if h.shape else 0) for _m, _a, h in streams.values()) if streams else 0
            for i in range(n):
                row = {}
                for k, (src, arr, h) in streams.items():
                    if arr is not None:
                        row[k] = arr[i]
                        continue
                    assert src is not None
                    size = math.prod(h.shape[1:]) * h.dtype.itemsize
                    raw = src.read(size)
                    if len(raw) != size:
                        raise _truncated(self.path, k, h, h.data_offset + i * size + len(raw), "numpy.savez")
                    row[k] = np.frombuffer(raw, dtype=h.dtype).reshape(h.shape[1:]).copy()
                yield row
        except UserError:
            raise
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
            raise _unreadable(self.path, e) from None
        finally:
            for src, _a, _h in streams.values():
                if src is not None:
                    src.close()
