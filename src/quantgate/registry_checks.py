"""What the registry's entries point at, checked on disk: the files an entry names exist (the
fp32 model with its external weights, the calibration and eval sets, the sidecar its mode
ships), each as a `Problem` at its field's line (`quantgate validate`), and before the gate
measures a model, the same for the two files it loads and the digests the registry records.

Above `registry` (which reads and validates the document without touching the files it names)
and `advice` (the command a missing sidecar's fix names).
"""

from __future__ import annotations

from pathlib import Path

from . import limits
from .advice import reproduce_command
from .errors import UserError
from .onnxio import missing_external_files
from .registry import Entry, Problem, Registry, shown_name, verify_digest


def _not_a_file(path: Path) -> str | None:
    """None for a regular file; else what is wrong, without opening it."""
    kind = limits.file_kind(path)
    if kind == "file":
        return None
    if kind in ("missing", "folder"):
        return f"file not found: {path}"
    return f"{path} is {kind}, not a regular file"


def check_files(reg: Registry) -> list[Problem]:
    """Problems a `validate` run adds beyond the schema: files that should exist and do not
    (the external weights an fp32 file names included)."""
    out = []
    shown = shown_name(reg.path)
    git = (reg.root / ".git").exists()
    base = f"relative to the repository root, {reg.root}"
    if not git:
        base += ": no git checkout holds the registry, so quantgate took that folder; pass --root to name another"
    for e in reg.entries:
        where = f"models[{e.index}]"
        if e.onnx_path is not None and (wrong := _not_a_file(e.onnx_path)):
            out.append(
                Problem(
                    shown,
                    f"{where}.onnx",
                    wrong,
                    "fix the path (it is relative to the registry's folder)",
                    e.line_of("onnx"),
                )
            )
        elif e.onnx_path is not None and (gone := missing_external_files(e.onnx_path)):
            out.append(
                Problem(
                    shown,
                    f"{where}.onnx",
                    f"{e.onnx_path.name} keeps its weights in {', '.join(gone)}, which is missing",
                    "restore it beside the model (a file left out of the commit, or a Git LFS file not pulled)",
                    e.line_of("onnx"),
                )
            )
        if e.mode == "static" and e.calibration_path is not None and (wrong := _not_a_file(e.calibration_path)):
            out.append(
                Problem(
                    shown,
                    f"{where}.quant_calibration_set",
                    wrong,
                    f"fix the path ({base}) or build the set with 'quantgate calibrate build'",
                    e.line_of("quant_calibration_set"),
                )
            )
        if e.eval_path is not None and (wrong := _not_a_file(e.eval_path)):
            out.append(
                Problem(
                    shown,
                    f"{where}.quant_eval_set",
                    wrong,
                    f"fix the path ({base})",
                    e.line_of("quant_eval_set"),
                )
            )
        if (
            e.mode in ("dynamic", "static", "qat")
            and e.int8_path is not None
            and e.onnx_path is not None
            and e.onnx_path.is_file()
            and not e.int8_path.is_file()
        ):
            out.append(
                Problem(
                    shown,
                    f"{where}.quant_mode",
                    f"mode '{e.mode}' ships {e.int8_path.name}, which does not exist",
                    f'produce it ({reproduce_command(e, reg.path)}) or set quant_mode "fp32"',
                    e.line_of("quant_mode"),
                )
            )
    return out


def check_present(e: Entry, fp32_shown: str | None, int8_shown: str | None, reg: Path) -> None:
    """Before the gate reads a model: both files it compares exist (one line naming the missing
    one and how to make it)."""
    for path, what, shown in ((e.onnx_path, "fp32 model", fp32_shown), (e.int8_path, "int8 sidecar", int8_shown)):
        if path is None or not path.is_file():
            fix = (
                "fix the entry's onnx path" if what == "fp32 model" else f"produce it with {reproduce_command(e, reg)}"
            )
            if e.index < 0 and what != "fp32 model":  # a file no registry lists: its mode is a guess
                fix = "produce it with quantgate ptq-dynamic (MatMul/Gemm models) or quantgate ptq-static"
            raise UserError(f"{what} not found: {shown}", fix=fix)


def check_digests(e: Entry, reg: Path) -> None:
    """The fp32 file and the sidecar are the ones whose digests the entry records (`sha256`,
    `int8_sha256`); a mismatch names the field (`UserError.entry_field`)."""
    assert e.onnx_path is not None and e.int8_path is not None
    for path, digest, name in ((e.onnx_path, e.sha256, "sha256"), (e.int8_path, e.int8_sha256, "int8_sha256")):
        try:
            verify_digest(path, digest, field_name=name, registry=reg)
        except UserError as err:
            err.entry_field = err.entry_field or name
            raise
