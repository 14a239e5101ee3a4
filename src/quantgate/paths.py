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
        raise UserError("expected a non-empty relative path", subject=what)
    if os.path.isabs(raw) or raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise UserError(f"'{raw}' is absolute", subject=what, fix="give a path relative to the repository")
    root_r = root.resolve()
    candidate = base / raw
    resolved = candidate.resolve()
    if resolved != root_r and root_r not in resolved.parents:
        how = "a symlink that leads" if ".." not in Path(raw).parts else "'..' that leads"
        raise UserError(
            f"'{raw}' resolves outside the repository ({how} to {resolved})",
            subject=what,
            fix=f"keep model files below {root_r}",
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


def check_writable(path: str | os.PathLike | None, subject: str | None = None) -> None:
    """Before any work: one `UserError` line when `path` (a report or output file) cannot be
    written, for what can be known without writing: inside `.git`, a folder, a name longer than its
    file system allows, below a regular file, or in a folder that is read-only or not ours to
    write. A device, FIFO or socket that exists is written to in place (`write_text`): left alone.
    Writing can still fail later (a full disk); the writers say so in one line too."""
    if path is None or os.fspath(path) == STDOUT:
        return
    p = Path(path)
    shown = subject or str(p)
    refuse_git(p)
    try:
        _check_writable(p, shown)
    except OSError as e:  # what a stat of the path or its folders says (a name too long, say)
        raise UserError(f"cannot be written ({_os_reason(e)})", subject=shown, fix=_WRITABLE) from None


def _check_writable(p: Path, shown: str) -> None:
    here = p.parent if str(p.parent) else Path(".")
    names = [p.name]
    while not here.exists() and not here.is_symlink():
        names.append(here.name)
        if here.parent == here:
            break
        here = here.parent
    if here.exists() and not here.is_dir():
        raise UserError(f"cannot be written ({here} is a file, not a folder)", subject=shown, fix=_WRITABLE)
    with contextlib.suppress(OSError, ValueError):
        most = os.pathconf(here, "PC_NAME_MAX")
        for name in names:
            if len(os.fsencode(name)) > most:
                raise UserError(
                    f"cannot be written (a name of {len(os.fsencode(name))} bytes, over the {most} its file "
                    "system allows)",
                    subject=shown,
                    fix="use a shorter name",
                )
    if p.is_dir():
        raise UserError("is a folder", subject=shown, fix="name a file in it")
    if p.exists() and not p.is_file():
        return
    if not os.access(here, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only(here) else "permission denied"
        raise UserError(f"cannot be written ({why}: {here})", subject=shown, fix=_WRITABLE)


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def all_or_nothing(*paths: str | os.PathLike | None):
    """Files written inside the block are all kept, or, when the block raises, every one of them
    is as it was before: a file that existed is put back (from a hard link made on entry, a copy
    where links are refused), one that did not is removed. For a run that writes several files that
    must agree (a sidecar, its report, the registry digest of it). Standard output, and devices
    or FIFOs (written in place), are not covered; None is skipped."""
    saved: list[tuple[Path, Path | None]] = []
    try:
        for raw in paths:
            if raw is None or os.fspath(raw) == STDOUT:
                continue
            p = Path(raw)
            if p.exists() and not p.is_file():
                continue
            saved.append((p, _backup(p) if p.is_file() else None))
    except BaseException:
        for _, backup in saved:
            _unlink(None if backup is None else str(backup))
        raise
    try:
        yield
    except BaseException:
        for p, backup in reversed(saved):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, p)  # does nothing when both already name one file (a nested block
                    _unlink(str(backup))  # put it back first): the backup name goes either way
                elif p.is_file():
                    os.unlink(p)
        raise
    else:
        for _, backup in saved:
            _unlink(None if backup is None else str(backup))


def _backup(p: Path) -> Path:
    """A second name for `p`'s current content beside it (`.<name>.<random>.keep`)."""
    for _ in range(100):
        name = p.with_name(f".{p.name}.{os.urandom(4).hex()}.keep")
        try:
            os.link(p, name)
            return name
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links
            import shutil

            try:
                shutil.copy2(p, name)
            except OSError as e:
                raise UserError(
                    f"cannot be kept while it is replaced ({_os_reason(e)})", subject=str(p), fix="free some space"
                ) from None
            return name
    raise UserError("cannot be kept while it is replaced (no free backup name)", subject=str(p))


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
        raise UserError(f"cannot be written ({_os_reason(e)})", subject=str(path), fix=_WRITABLE) from None
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


_WRITABLE = "pick a writable path with room on its disk"


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
    try:
        special = p.exists() and not p.is_file()
    except OSError as e:  # a name too long, say
        raise UserError(f"cannot be written ({_os_reason(e)})", subject=str(p), fix=_WRITABLE) from None
    if special:
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
