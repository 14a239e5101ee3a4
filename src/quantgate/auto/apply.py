"""What `quantgate auto` writes for the candidate it chose: the sidecar beside the fp32 model, the
calibration set it made (where the registry expects one), and the entry's row edited in place:
quant_mode, int8_sha256, quant_calibration_set, quant_calibration_note, quant_nodes_to_exclude.
Every other field, the key order and the file's formatting stay as they were.

The edit is computed and checked before anything is written; the files are then written one by
one, atomically, and a failure part-way puts back the sidecar it replaced, so the registry never
names a file it does not describe.
"""

from __future__ import annotations

import contextlib
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..jsonedit import REMOVE, patch
from ..paths import atomic_write_bytes, atomic_write_text, display, sha256_file
from ..registry_edit import locked
from .search import Outcome


@dataclass
class Plan:
    """The files and the registry edit one outcome asks for."""

    outcome: Outcome
    changes: dict[str, Any] = field(default_factory=dict)
    sidecar: tuple[Path, Path] | None = None  # (candidate file, destination)
    calibration: tuple[Path, dict[str, np.ndarray]] | None = None  # a set auto made, and where it goes

    @property
    def empty(self) -> bool:
        return not self.changes and self.sidecar is None and self.calibration is None


def plan(o: Outcome, root: Path) -> Plan:
    p = Plan(o)
    t = o.chosen
    if o.keep_fp32 and o.found and o.entry.mode != "fp32" and o.entry.index >= 0:
        p.changes = {"quant_mode": "fp32"}  # the answer (int8 slower, or not smaller) is fp32: ship it
        return p
    if t is None or t.file is None:
        return p
    e = o.entry
    raw = e.raw
    assert e.int8_path is not None
    digest = sha256_file(t.file)
    same_file = e.int8_path.is_file() and sha256_file(e.int8_path) == digest
    if not same_file:
        p.sidecar = (t.file, e.int8_path)
    want: dict[str, Any] = {"quant_mode": t.candidate.mode, "int8_sha256": digest}
    keep = list(t.candidate.exclude)
    if keep:
        want["quant_nodes_to_exclude"] = keep
    elif "quant_nodes_to_exclude" in raw:
        want["quant_nodes_to_exclude"] = REMOVE
    data = o.calibration
    if t.candidate.mode == "static" and data is not None:
        want["quant_calibration_set"] = display(data.path, root)
        if data.source != "calibration set":
            want["quant_calibration_note"] = data.note
            if not data.path.exists():  # the set auto made (synthetic draws, or half of the eval set)
                p.calibration = (data.path, data.arrays)
    if e.index >= 0:  # a model no registry lists gets its sidecar only
        p.changes = {k: v for k, v in want.items() if raw.get(k, REMOVE) != v}
    return p


def registry_text(plans: list[Plan], registry: Path) -> tuple[str, str]:
    """(old, new) registry text with every plan's edit made."""
    old = registry.read_bytes().decode("utf-8")  # bytes: CRLF line ends stay CRLF
    new = old
    for p in plans:
        if p.changes:
            new = patch(registry, new, p.outcome.entry.index, p.changes)
    return old, new


def unified_diff(old: str, new: str, registry: Path) -> str:
    name = str(registry)
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}"))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def write(plans: list[Plan], registry: Path, new_text: str, old_text: str) -> list[Path]:
    """Write the calibration sets, the sidecars, then the registry; when a write fails, put back
    every sidecar it replaced and remove the sets it made. Returns the files written. The registry's
    edit lock is held throughout, and a registry that changed since `old_text` was read (another
    edit landed meanwhile) is one line before anything is written: its update is never lost."""
    edits = new_text != old_text
    with locked(registry) if edits else contextlib.nullcontext():
        if edits and registry.read_bytes().decode("utf-8") != old_text:  # as registry_text read it
            raise UserError(
                "changed while quantgate auto ran (another edit landed); nothing was written",
                subject=str(registry),
                fix="run quantgate auto again",
            )
        return _write(plans, registry, new_text, old_text)


def _write(plans: list[Plan], registry: Path, new_text: str, old_text: str) -> list[Path]:
    written: list[Path] = []
    restore: list[tuple[Path, bytes | None]] = []
    try:
        for p in plans:
            if p.calibration is not None:
                path, arrays = p.calibration
                path.parent.mkdir(parents=True, exist_ok=True)
                restore.append((path, None))  # a set auto makes never replaces a file
                atomic_write_bytes(path, _npz_bytes(arrays))
                written.append(path)
            if p.sidecar is not None:
                src, dst = p.sidecar
                restore.append((dst, dst.read_bytes() if dst.is_file() else None))
                atomic_write_bytes(dst, src.read_bytes())
                written.append(dst)
        if new_text != old_text:
            atomic_write_text(registry, new_text)
            written.append(registry)
    except BaseException:
        for dst, before in reversed(restore):
            if before is None:
                dst.unlink(missing_ok=True)
            else:
                atomic_write_bytes(dst, before)
        raise
    return written
