"""Path rules: the int8 sidecar name, confinement below the repository, atomic writes, digests."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import UserError, one_line

INT8_SUFFIX = ".int8.onnx"


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """`<stem>.int8.onnx` beside `<stem>.onnx` — the one place this rule lives."""
    p = Path(onnx_path)
    name = p.name
    stem = name[: -len(".onnx")] if name.endswith(".onnx") else p.stem
    return p.with_name(stem + INT8_SUFFIX)


def sha256_file(path: str | os.PathLike) -> str:
    """The file's sha256. The gate needs one file's digest up to three times (registry digest,
    stale-sidecar check, provenance): remembered while the file's inode, size, mtime and ctime
    all stay the same (any rewrite, in place or by rename, changes at least one)."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256_cached(p, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: Path, ino: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def find_repo_root(start: Path) -> Path:
    """The nearest folder at or above `start` that holds `.git`; else the current directory
    when it contains `start`; else `start`'s own folder."""
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    for d in (here, *here.parents):
        if (d / ".git").exists():
            return d
    cwd = Path.cwd().resolve()
    if cwd == here or cwd in here.parents:
        return cwd
    return here


def confine(raw: str, base: Path, root: Path, *, what: str) -> Path:
    """Resolve `raw` (relative to `base`) and refuse anything that leaves `root`.

    Absolute paths, `..` escapes and symlinks that lead outside are refused; `what` names the
    field in the error line.
    """
    if not isinstance(raw, str) or not raw:
        raise UserError(f"{what}: expected a non-empty relative path")
    if os.path.isabs(raw) or raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise UserError(f"{what}: '{raw}' is absolute; give a path relative to the repository")
    root_r = root.resolve()
    candidate = base / raw
    resolved = candidate.resolve()
    if resolved != root_r and root_r not in resolved.parents:
        how = "a symlink that leads" if ".." not in Path(raw).parts else "'..' that leads"
        raise UserError(
            f"{what}: '{raw}' resolves outside the repository ({how} to {resolved}); keep model files below {root_r}"
        )
    return resolved


STDOUT = "-"


def _resolved(path: Path, subject: str) -> Path:
    """`path.resolve()`, with a symlink loop (or a name the system refuses) as one line."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise UserError(
            f"cannot be resolved ({one_line(e, 80)})", subject=subject, fix="name a plain file path"
        ) from None


def refuse_git(path: Path) -> None:
    """No output of quantgate ever lands in a `.git` folder (a hostile `out_json: .git/config`)."""
    resolved = _resolved(path, str(path))
    if ".git" in resolved.parts or ".git" in path.parts:
        raise UserError(
            "is inside a .git folder, which quantgate never writes to",
            subject=str(path),
            fix="write the file somewhere else in the repository",
        )


# What a report (JSON or markdown) is never named like: a model, its external data, a data set.
NOT_A_REPORT = (".onnx", ".data", ".npz", ".npy", ".parquet")


def refuse_clobber(out: str | os.PathLike | None, subject: str, reads: Mapping[str, str | os.PathLike | None]) -> None:
    """Before any work: a report path `out` (named `subject`, e.g. "--json-out") that would replace
    a file this run reads (`reads`, by what it is) or that is named like a model or data file is
    one line, so a slip in an option never costs the registry or a model."""
    if out is None or os.fspath(out) == STDOUT:
        return
    path = Path(out)
    if path.name.lower().endswith(NOT_A_REPORT):
        raise UserError(
            f"is named like a model or data file ({path.suffix}), not a report",
            subject=f"{subject} {out}",
            fix="name the report .json (or .md for markdown)",
        )
    target = _resolved(path, f"{subject} {out}")
    for what, read in reads.items():
        if read is None or os.fspath(read) == STDOUT:
            continue
        same = False
        with contextlib.suppress(OSError, RuntimeError, ValueError):  # an input that cannot resolve is not this file
            same = Path(read).resolve() == target
        if same:
            raise UserError(
                f"is also this run's {what}; the report would replace it",
                subject=f"{subject} {out}",
                fix="write the report to another path",
            )


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers see old or new, never
    half; an interruption leaves no temporary file behind. A path that cannot be written is one
    `UserError` line naming it."""
    path = Path(path)
    refuse_git(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_of(path))
        os.replace(tmp, path)
    except OSError as e:
        _unlink(tmp)
        raise UserError(
            f"cannot be written ({_os_reason(e)})", subject=str(path), fix="pick a writable path with room on its disk"
        ) from None
    except BaseException:
        _unlink(tmp)
        raise


def _mode_of(path: Path) -> int:
    """The permission bits a replaced file keeps (a read-only registry stays read-only); 0o644 for
    a new file."""
    try:
        return stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o644
    except OSError:
        return 0o644


def _unlink(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _os_reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Where a report goes: `-` is standard output; a device, FIFO or socket that exists (e.g.
    /dev/stdout) is written to, never replaced by a file; any other path atomically."""
    if os.fspath(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    p = Path(path)
    if p.exists() and not p.is_file():
        refuse_git(p)
        try:
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise UserError(f"cannot be written ({_os_reason(e)})", subject=str(p)) from None
        return
    atomic_write_text(p, text)


def _jsonable(obj):
    """JSON has no NaN or infinity (such a float becomes null) and no paths (strings)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_json(path: str | os.PathLike, doc) -> None:
    """The one writer of every JSON report: an object's `to_json()` (or a dict), indented,
    non-finite numbers as null, paths as strings, written as `write_text` does."""
    data = doc.to_json() if hasattr(doc, "to_json") else doc
    write_text(path, json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")


def display(path: Path, root: Path | None) -> str:
    """A path as the user wrote it: relative to the repository root when it is below it."""
    if root is not None:
        try:
            return Path(path).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)
