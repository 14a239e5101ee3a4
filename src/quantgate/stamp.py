"""What a quantgate-made sidecar records about itself, and what the gate concludes from it.

Every producer stamps its sidecar (`quantgate.*` ONNX metadata): the digest of the fp32 file it
was made from (and of its external weights), the mode it was made in, the nodes it keeps in
float. The gate reads the stamp back to refuse a sidecar that no longer describes the entry: one
left behind by an fp32 update or an edit of quant_nodes_to_exclude (stale), or one made in
another mode than the entry's. Below both `produce/` (which writes the stamp) and `gate/` (which
reads it), so neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from .advice import reproduce_command
from .errors import UserError
from .onnxio import data_digest, load_model
from .paths import sha256_file
from .registry import Entry

SOURCE_KEY = "quantgate.source_sha256"
SOURCE_DATA_KEY = "quantgate.source_data_sha256"  # only for an fp32 model with external data
EXCLUDED_KEY = "quantgate.nodes_to_exclude"  # only when nodes were kept in float: a JSON list
MODE_KEY = "quantgate.mode"
VERSION_KEY = "quantgate.version"
INT8_MODES = ("dynamic", "static", "qat")


def stamp_source(
    model: onnx.ModelProto,
    mode: str,
    source: Path,
    external: list[Path] | None = None,
    excluded: tuple[str, ...] = (),
) -> None:
    """Record in the sidecar which fp32 file (and external weights) it was made from, and which
    nodes it keeps in float, so the gate can tell a sidecar left behind by an fp32 update or an
    edit of quant_nodes_to_exclude (stale) from a current one."""
    from . import __version__

    # Kept short: on a model of a few KB every byte shows in the size ratio (settings are in the report).
    stamp = {SOURCE_KEY: sha256_file(source), MODE_KEY: mode, VERSION_KEY: __version__}
    if external:
        stamp[SOURCE_DATA_KEY] = data_digest(external)
    if excluded:
        stamp[EXCLUDED_KEY] = json.dumps(sorted(set(excluded)), ensure_ascii=False)
    kept = [p for p in model.metadata_props if p.key not in stamp]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in stamp.items():
        model.metadata_props.add(key=key, value=value)


def read_stamp(path: Path) -> dict[str, str]:
    """What a quantgate-made sidecar records about itself (`quantgate.*` metadata); {} for others."""
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # not readable: the gate's own load reports that
        return {}
    return {p.key: p.value for p in m.metadata_props if p.key.startswith("quantgate.")}


def stamped_exclusions(stamp: dict[str, str]) -> tuple[str, ...] | None:
    """The nodes a sidecar's stamp says it keeps in float (sorted); None when the stamp cannot be read."""
    raw = stamp.get(EXCLUDED_KEY)
    if raw is None:
        return ()
    try:
        names = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return tuple(sorted(set(names)))


def check_not_stale(
    e: Entry, int8_shown: str | None, fp32_shown: str | None, stamp: dict[str, str], fp32_data: list[Path], reg: Path
) -> None:
    """A PTQ sidecar made by quantgate records the fp32 digest it came from; one made from another
    fp32 file measures nothing about this one. (QAT sidecars come from the QAT-conditioned
    export, not the registry's fp32 file, so they are not compared.)"""
    if e.mode not in ("dynamic", "static"):
        return
    assert e.int8_path is not None and e.onnx_path is not None  # checked to exist before this
    recorded = stamp.get(SOURCE_KEY)
    if recorded is None:
        return
    fix = f"re-produce it with {reproduce_command(e, reg)}"
    actual = sha256_file(e.onnx_path)
    if recorded != actual:
        raise UserError(
            f"{int8_shown} is stale: it was made from an fp32 file with sha256 "
            f"{recorded[:12]}..., {fp32_shown} is now {actual[:12]}...",
            fix=fix,
        )
    recorded_data = stamp.get(SOURCE_DATA_KEY)
    if recorded_data is not None and data_digest(fp32_data) != recorded_data:
        named = ", ".join(p.name for p in fp32_data) or "its external data files (now missing)"
        raise UserError(f"{int8_shown} is stale: the fp32 weights in {named} changed since it was made", fix=fix)


def check_exclusions(e: Entry, int8_shown: str | None, stamp: dict[str, str], reg: Path) -> None:
    """A quantgate-made sidecar records the nodes it keeps in float; one made with others than the
    entry's quant_nodes_to_exclude is not the sidecar the registry describes."""
    if MODE_KEY not in stamp:  # not made by quantgate: nothing recorded to compare
        return
    made = stamped_exclusions(stamp)
    if made is None or made == e.nodes_to_exclude:
        return

    def shown(names: tuple[str, ...]) -> str:
        return "[" + ", ".join(names) + "]" if names else "none"

    raise UserError(
        f"{int8_shown} is stale: it keeps {shown(made)} in float, quant_nodes_to_exclude says "
        f"{shown(e.nodes_to_exclude)}",
        fix=f"re-produce it with {reproduce_command(e, reg)}",
    )


def check_made_as(e: Entry, int8_shown: str | None, stamp: dict[str, str], reg: Path) -> None:
    """A quantgate-made sidecar records the mode it was made in; an entry that says another one
    (quant_mode edited, or a sidecar shared with an entry of another mode) is gated as what it
    is not."""
    if e.index < 0:  # ad hoc: the mode was read from the stamp
        return
    made = stamp.get(MODE_KEY)
    if made in INT8_MODES and made != e.mode:
        raise UserError(
            f"{int8_shown} was made as a {made} sidecar (its quantgate.mode stamp), but quant_mode is {e.mode}",
            fix=f"re-produce it with {reproduce_command(e, reg)}, or set quant_mode to {made}",
        )


def sidecar_mode(int8: Path) -> str:
    """The mode an unlisted sidecar was made in: what quantgate stamped in it, else what its graph
    shows (activations quantised at run time: dynamic; by fixed scales: static)."""
    stamped = read_stamp(int8).get(MODE_KEY)
    if stamped in INT8_MODES:
        return stamped
    try:
        ops = {n.op_type for n in load_model(int8, external=False, what="int8 sidecar").graph.node}
    except UserError:
        return "dynamic"  # the gate's own load says what is wrong with it
    fixed_scales = ops & {"QuantizeLinear", "QLinearConv", "QLinearMatMul"}
    return "static" if fixed_scales and "DynamicQuantizeLinear" not in ops else "dynamic"
