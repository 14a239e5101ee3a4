"""Hostile files for tests, built by code in milliseconds: decompression and header bombs, named
pipes, symlink loops, and large registries.

Every builder writes into a path it is given and returns that path. The bombs are honest: the
zip bomb is a valid zip (CRC included) whose one member really inflates to what it declares.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

MIB = 1 << 20


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """A version 1.0 `.npy` header promising an array of `shape` and `descr` (no data)."""
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))  # noqa: UP031
    pad = 64 - (10 + len(d) + 1) % 64
    h = (d + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h


def _zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip from (name, stored bytes, uncompressed size, crc, method) members."""
    body, central = b"", b""
    for name, data, size, crc, method in members:
        n = name.encode()
        offset = len(body)
        body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(data), size, len(n), 0)
        body += n + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            *(b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, len(data), size, len(n), 0, 0, 0, 0, 0, offset),
        )
        central += n
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(body), 0)
    return body + central + end


def zip_bomb_npz(path: Path, mib: int = 3072) -> Path:
    """A ~1 KB-per-MiB `.npz` whose member `x.npy` inflates to `mib` MiB of zeros (uint8): the
    default is 3 MB on disk, 3 GiB loaded. Deflate blocks flushed in full are independent, so one
    compressed MiB of zeros repeats."""
    prefix = npy_header((mib * MIB,))

    def raw() -> zlib._Compress:
        return zlib.compressobj(9, zlib.DEFLATED, -15)

    c = raw()
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    c = raw()
    chunk = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = raw().flush(zlib.Z_FINISH)
    crc, zeros = zlib.crc32(prefix), bytes(MIB)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    data = head + chunk * mib + tail
    path.write_bytes(_zip([("x.npy", data, len(prefix) + mib * MIB, crc, 8)]))
    return path


def header_bomb_npz(path: Path, shape: tuple[int, ...] = (10**12,), descr: str = "<f4", data: bytes = b"") -> Path:
    """An `.npz` whose member `x.npy` is a header promising `shape` followed by `data` only."""
    member = npy_header(shape, descr) + data
    path.write_bytes(_zip([("x.npy", member, len(member), zlib.crc32(member), 0)]))
    return path


def header_bomb_npy(path: Path, shape: tuple[int, ...] = (10**12,), descr: str = "<f4") -> Path:
    """A `.npy` of a header alone, promising `shape` (4 TB by default)."""
    path.write_bytes(npy_header(shape, descr))
    return path


def fifo(path: Path) -> Path:
    """A named pipe nobody writes to: a reader that opens it blocks for ever."""
    os.mkfifo(path)
    return path


def symlink_loop(path: Path) -> Path:
    """`path` -> `<path>.other` -> `path`."""
    other = path.with_name(path.name + ".other")
    os.symlink(other.name, path)
    os.symlink(path.name, other)
    return path


def big_registry(path: Path, n: int, onnx: str = "m.onnx") -> Path:
    """A registry of `n` dynamic entries, indented as `write_registry` writes (id on line 5 + 6k)."""
    models = [{"id": f"model_{i:06d}", "onnx": onnx, "quant_mode": "dynamic"} for i in range(n)]
    path.write_text(json.dumps({"schema_version": 1, "models": models}, indent=2) + "\n")
    return path
