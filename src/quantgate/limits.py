"""Bounds on what quantgate reads, and reading a file only when it is a regular one.

Everything quantgate reads may come from a pull request. Each bound below is a module constant
(the default; a caller or a test may change it) that an environment variable overrides; the error
that names a bound also names its variable. Files are read only when they are regular files once
symlinks are followed: a named pipe would block the reader for ever, a device would never end.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

# Bytes of the arrays one .npz/.npy file may hold once loaded (each array and all of them).
MAX_ARRAY_BYTES = 1 << 30
# Members of one .npz (numpy.savez writes one per array; a set has one per model input).
MAX_NPZ_MEMBERS = 4096
# Elements of one drawn sample, in each input and across them all (2^28 float32 values are 1 GiB).
MAX_INPUT_ELEMENTS = 1 << 28
# Size of a registry file, and the entries it may list.
MAX_REGISTRY_BYTES = 64 << 20
MAX_REGISTRY_ENTRIES = 20_000
# Size of a results document (`quantgate comment --results`).
MAX_RESULTS_BYTES = 256 << 20
# Nesting of a JSON document quantgate reads (a registry needs 6 levels, a results document 7).
MAX_JSON_DEPTH = 64
# Pixels of one calibration image (8192 x 8192), checked from its header before it is decoded.
MAX_IMAGE_PIXELS = 1 << 26
# Activations a histogram calibration (static PTQ, entropy or percentile) holds at once: every
# calibrated tensor of every sample (measured on one sample, times the samples).
MAX_CALIBRATION_BYTES = 1 << 30


@dataclass(frozen=True)
class Limit:
    """One bound: the module constant holding its default, the variable that overrides it."""

    constant: str
    env: str
    unit: str

    @property
    def default(self) -> int:
        return int(globals()[self.constant])

    def value(self) -> int:
        """The bound in force: the environment variable when set, else the module constant."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            v = int(raw)
        except ValueError:
            v = 0
        if v < 1:
            raise UserError(
                f"{raw!r} is not a positive whole number of {self.unit}",
                subject=self.env,
                fix=f"set a number, or unset it for the default ({self.default:,})",
            )
        return v

    def fix(self) -> str:
        """How to raise it, for the error that names it."""
        return f"raise the limit with {self.env}=N (default {self.default:,})"


ARRAY_BYTES = Limit("MAX_ARRAY_BYTES", "QUANTGATE_MAX_ARRAY_BYTES", "bytes")
NPZ_MEMBERS = Limit("MAX_NPZ_MEMBERS", "QUANTGATE_MAX_NPZ_MEMBERS", "members")
INPUT_ELEMENTS = Limit("MAX_INPUT_ELEMENTS", "QUANTGATE_MAX_INPUT_ELEMENTS", "elements")
REGISTRY_BYTES = Limit("MAX_REGISTRY_BYTES", "QUANTGATE_MAX_REGISTRY_BYTES", "bytes")
REGISTRY_ENTRIES = Limit("MAX_REGISTRY_ENTRIES", "QUANTGATE_MAX_REGISTRY_ENTRIES", "entries")
RESULTS_BYTES = Limit("MAX_RESULTS_BYTES", "QUANTGATE_MAX_RESULTS_BYTES", "bytes")
IMAGE_PIXELS = Limit("MAX_IMAGE_PIXELS", "QUANTGATE_MAX_IMAGE_PIXELS", "pixels")
CALIBRATION_BYTES = Limit("MAX_CALIBRATION_BYTES", "QUANTGATE_MAX_CALIBRATION_BYTES", "bytes")

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(path: str | os.PathLike) -> str:
    """What is at `path`, symlinks followed: "file" (a regular one), "missing", "folder",
    "a symlink loop", "a named pipe (FIFO)", "a socket", "a character device", "a block device",
    or "unreadable (<reason>)". Never raises, never opens it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop"
        if e.errno == errno.ENOTDIR:
            return "missing"
        return f"unreadable ({e.strerror or type(e).__name__})"
    except ValueError:  # an embedded NUL byte
        return "missing"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    return next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")


def not_regular(path: str | os.PathLike, kind: str, what: str) -> UserError:
    """The one line for a path that is neither missing nor a folder nor a regular file."""
    return UserError(f"is {kind}, not a regular file", subject=str(path), fix=f"pass the {what} file itself")


def read_bytes(path: str | os.PathLike, limit: Limit, *, what: str) -> bytes:
    """A regular file's bytes, at most `limit`'s bytes of them, or one `UserError` line.

    The file is opened without blocking and checked again once open, so a pipe swapped in after
    the check cannot hang the reader. Missing files raise `FileNotFoundError` for the caller to
    word; folders `IsADirectoryError`.
    """
    kind = file_kind(path)
    if kind == "missing":
        raise FileNotFoundError(errno.ENOENT, "not found", str(path))
    if kind == "folder":
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    if kind != "file":
        raise not_regular(path, kind, what)
    cap = limit.value()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, "not a regular file", what)
        if st.st_size > cap:
            raise too_big(path, st.st_size, limit, cap, what)
        data = f.read(cap + 1)
    if len(data) > cap:  # it grew while being read
        raise too_big(path, len(data), limit, cap, what)
    return data


STDIN = "-"


def read_input(path: str | os.PathLike, limit: Limit, *, what: str) -> bytes:
    """`read_bytes`, except that `-` reads standard input (at most `limit`'s bytes of it). A
    terminal on standard input is refused rather than waited on."""
    if os.fspath(path) != STDIN:
        return read_bytes(path, limit, what=what)
    import sys

    stream = sys.stdin
    if stream is None:
        raise UserError("- reads standard input, which is closed", fix=f"pipe the {what} in, or name its file")
    if stream.isatty():
        raise UserError(
            "- reads standard input, which is a terminal here",
            subject=f"the {what}",
            fix=f"pipe the {what} in (quantgate ... < FILE), or name its file",
        )
    cap = limit.value()
    data = stream.buffer.read(cap + 1)
    if len(data) > cap:
        raise too_big("standard input", len(data), limit, cap, what)
    return data


def too_big(path: str | os.PathLike, size: int, limit: Limit, cap: int, what: str) -> UserError:
    return UserError(
        f"the {what} is {size:,} bytes, over the limit of {cap:,} bytes", subject=str(Path(path)), fix=limit.fix()
    )
