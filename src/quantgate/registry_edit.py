"""Set one string field of one registry row by editing the JSON text in place.

The registry belongs to its repository: its indentation, key order, line endings and fields
quantgate does not know stay as they are. Only the value of the field is replaced, or one
member is inserted after `quant_mode` (else after the row's last member) with the row's own
indentation. The edited text must parse to the original document with that one field set.

Every read-modify-write of a registry holds `locked(registry)`, so two quantgate runs editing
one registry (two producers with `--registry-id`, say) never lose each other's update.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import UserError, param
from .jsonedit import set_field
from .limits import STDIN
from .paths import atomic_write_text, display, sha256_file
from .registry import load_registry, producer_command

# How long an edit waits for another quantgate run to finish editing the same registry.
LOCK_WAIT_S = 300.0


@contextlib.contextmanager
def locked(
    registry: str | Path, *, wait: float = LOCK_WAIT_S, waiting: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold `registry`'s edit lock: read the registry, change it and write it inside the block.

    The lock is an advisory `flock` on the registry's folder, so no lock file is left in the
    repository and an atomic rename of the registry (a new inode) does not escape it; every
    registry in that folder shares it. When another process holds it, `waiting()` is called once
    and the edit waits up to `wait` seconds, then stops with one line. Where the system has no
    `flock` (not POSIX) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = Path(registry).resolve().parent
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UserError(
            f"cannot lock the registry's folder for the edit ({e.strerror or type(e).__name__})",
            subject=str(registry),
            fix="check that the folder exists and is readable",
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            deadline = time.monotonic() + wait
            while True:
                time.sleep(0.05)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UserError(
                            f"another process has been editing the registry for over {wait:g} s",
                            subject=str(registry),
                            fix="let it finish (or stop it), then run this again",
                        ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_field(registry: Path, index: int, key: str, value: str) -> tuple[str, str]:
    """(old text, new text) for setting the field; verified, not yet written."""
    try:
        text = registry.read_bytes().decode("utf-8")  # bytes: CRLF line ends stay CRLF
        json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(
            f"cannot read the registry ({type(e).__name__})", subject=str(registry), fix="fix it first"
        ) from None
    return _checked(registry, text, index, key, value)


def check_target(
    registry: str | Path,
    registry_id: str,
    model: Path,
    sidecar: Path,
    *,
    root: str | Path | None = None,
    fp32_written: bool = False,
    mode: str | None = None,
    set_mode: bool = False,
    calibration: Path | None = None,
):
    """The entry `--registry-id` names, checked before anything is produced: it exists, its
    `quant_mode` is the `mode` being produced (unless `set_mode`: this run makes it so), its
    `onnx` is `model`, the sidecar goes where the gate will look for it, and the fp32 file is the
    one its `sha256` records (unless this run writes that file too)."""
    if str(registry) == STDIN:
        raise UserError(
            "a registry read from standard input cannot be edited",
            subject=f"{param('registry')} -",
            fix=f"name the registry file, or leave out {param('registry_id')}",
        )
    reg = load_registry(registry, root)
    e = reg.get(registry_id)

    def at(key: str) -> str:  # the registry file and the line of the entry's field `key`
        line = e.line_of(key)
        return f"{reg.path}:{line}" if line else str(reg.path)

    if e.onnx_path is None or e.onnx_path != Path(model).resolve():
        raise UserError(
            f"entry '{registry_id}' is the model {e.raw.get('onnx')}, not {model}",
            subject=at("onnx"),
            fix=f"pass that model, or the id of the entry whose onnx is {model}",
        )
    if mode is not None and e.mode != mode and not set_mode:
        made_by = "ships no int8 sidecar" if e.mode == "fp32" else f"ships the sidecar {producer_command(e.mode)} makes"
        raise UserError(
            f"entry '{registry_id}' has quant_mode {e.mode}, which {made_by}; this run makes a {mode} sidecar",
            subject=at("quant_mode"),
            field=f"models[{e.index}].quant_mode",
            fix=f"add {param('set_mode')} to switch the entry to {mode}, or run {producer_command(e.mode)}"
            if e.mode != "fp32"
            else f"add {param('set_mode')} to make it a {mode} entry (this run then sets quant_mode)",
        )
    if set_mode and calibration is not None:  # it can be recorded (inside the repository)
        calibration_value(reg.root, calibration, what=f"{param('calibration')} {calibration}")
    if e.int8_path is not None and Path(sidecar).resolve() != e.int8_path:
        here = Path.cwd()
        raise UserError(
            f"entry '{registry_id}' is gated against {display(e.int8_path, here)} (beside the file its onnx "
            f"resolves to), not {display(Path(sidecar), here)}",
            subject=at("onnx"),
            fix=f"write to {display(e.int8_path, here)} with {param('output')}, or leave out {param('registry_id')}",
        )
    if e.sha256 and not fp32_written and e.sha256 != (fp32_digest := sha256_file(e.onnx_path)):
        raise UserError(
            f"sha256 of {e.onnx_path.name} does not match: registry {e.sha256[:12]}..., file {fp32_digest[:12]}...",
            subject=at("sha256"),
            field=f"models[{e.index}].sha256",
            fix="restore the fp32 file the registry names, or update sha256 first",
        )
    return reg, e


def record_sidecar(
    registry: str | Path,
    registry_id: str,
    model: Path,
    sidecar: Path,
    *,
    root: str | Path | None = None,
    fp32_written: bool = False,
    mode: str | None = None,
    set_mode: bool = False,
    calibration: Path | None = None,
    waiting: Callable[[], None] | None = None,
) -> dict[str, str]:
    """Set the entry's `int8_sha256` to the digest of the sidecar just produced (and its `sha256`
    when this run also wrote the fp32 file), editing only those values. With `set_mode`, also
    its `quant_mode` to `mode`, and for static its `quant_calibration_set` to `calibration` (the
    set this run was calibrated on). All under the registry's lock (`waiting()` is called when
    another edit holds it). Returns what changed."""
    with locked(registry, waiting=waiting):  # read, change and write as one step
        reg, e = check_target(
            registry,
            registry_id,
            model,
            sidecar,
            root=root,
            fp32_written=fp32_written,
            mode=mode,
            set_mode=set_mode,
            calibration=calibration,
        )
        assert e.onnx_path is not None
        values: dict[str, str] = {}
        if set_mode and mode is not None and (e.mode != mode or "quant_mode" not in e.raw):
            values["quant_mode"] = mode
        if set_mode and calibration is not None:
            cal = calibration_value(reg.root, calibration, what=f"{param('calibration')} {calibration}")
            if e.raw.get("quant_calibration_set") != cal:
                values["quant_calibration_set"] = cal
        values["int8_sha256"] = sha256_file(sidecar)
        if fp32_written or (e.sha256 is None and "sha256" in e.raw):
            values["sha256"] = sha256_file(e.onnx_path)
        text = reg.path.read_bytes().decode("utf-8")  # bytes: CRLF line ends stay CRLF
        for key, value in values.items():
            _, text = _checked(reg.path, text, e.index, key, value)
        atomic_write_text(reg.path, text)
    return values


def calibration_value(root: Path, calibration: Path, *, what: str) -> str:
    """How the registry names a calibration set: relative to the repository root, with '/'."""
    try:
        return Path(calibration).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UserError(
            f"is outside the repository {root}, so the registry cannot name it",
            subject=what,
            fix="keep the calibration set inside the repository",
        ) from None


def _checked(registry: Path, text: str, index: int, key: str, value: str) -> tuple[str, str]:
    expected = json.loads(text)
    expected["models"][index][key] = value
    try:
        new = set_field(text, index, key, value)
        ok = json.loads(new) == expected
    except (ValueError, IndexError, KeyError):
        ok = False
    if not ok:
        raise UserError(
            f"could not set models[{index}].{key} without reformatting the file",
            subject=str(registry),
            fix=f'set "{key}": {json.dumps(value)} by hand',
        )
    return text, new
