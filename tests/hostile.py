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


# --- round 3: the action's environment, the runner's log, memory and mounts -----------------


def forged_lines(text: str) -> list[str]:
    """Lines of a log that the Actions runner would obey although quantgate did not mean them: a
    line that starts with `::` (after white space) and is not one of quantgate's own commands (an
    annotation titled `quantgate...`, or a mask), or any other line holding `##[` (the runner's
    older form, obeyed anywhere in a line), a raw CR or an ESC."""
    bad = []
    for line in text.split("\n"):
        body = line.lstrip()
        if body.startswith("::"):
            ours = body.startswith("::add-mask::") or (
                body.startswith(("::error ", "::warning ", "::notice ")) and "title=quantgate" in body
            )
            if not ours:
                bad.append(line)
        elif "##[" in line or "\r" in line or "\x1b" in line:
            bad.append(line)
    return bad


def slow_loris_answer(body_bytes: int = 100_000) -> bytes:
    """An HTTP answer that, sent a byte at a time, takes hours: headers, then a long JSON body."""
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {body_bytes}\r\n\r\n"
    ).encode()
    return head + b"[" + b" " * (body_bytes - 2) + b"]"


def limit_data(nbytes: int):
    """A `preexec_fn` that caps the child's data segment and anonymous memory (RLIMIT_DATA): an
    allocation past it fails in the child, so a test never takes the machine's memory."""
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (nbytes, nbytes))

    return apply


_NS: list[list[str] | None] = []


def mount_namespace() -> list[str] | None:
    """The `unshare` prefix that runs a command in a mount namespace of its own (where a test may
    mount a read-only or tiny tmpfs without touching the machine's mounts), or None where this
    system does not allow it (no `unshare`, no user namespaces)."""
    import shutil
    import subprocess

    if not _NS:
        found = None
        exe = shutil.which("unshare")
        for prefix in ([exe, "-m"], [exe, "-r", "-m"]) if exe else ():
            probe = [
                *prefix,
                "sh",
                "-c",
                "mount -t tmpfs -o size=64k none /mnt 2>/dev/null || mount -t tmpfs none /tmp",
            ]
            if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
                found = prefix
                break
        _NS.append(found)
    return _NS[0]


def with_tmpfs(prefix: list[str], folder: Path, options: str, argv: list[str]) -> list[str]:
    """`argv` run with a tmpfs mounted on `folder` (`options`: e.g. "ro" or "size=8k")."""
    import shlex

    mount = f"mount -t tmpfs -o {shlex.quote(options)} quantgate-test {shlex.quote(str(folder))}"
    # bash, not sh: dash drops variables whose names hold a hyphen (the runner's INPUT_JSON-OUT)
    return [*prefix, "bash", "-c", f"{mount} && exec {' '.join(shlex.quote(a) for a in argv)}"]


def good_mlp_checkout(root: Path) -> Path:
    """A git checkout (a .git folder) holding good.onnx, a small MLP, and its dynamic sidecar."""
    import modelzoo
    from quantgate.produce.dynamic import quantize_dynamic

    (root / ".git").mkdir()
    quantize_dynamic(modelzoo.mlp(root, name="good"))
    return root
