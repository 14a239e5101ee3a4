"""How one source row becomes one sample of a model input.

A sample is what one row of the calibration set holds for an input: the input's dims without
the batch dim when that dim is free or 1 (the set is then `[N, ...]` with the input's rank), or
every dim when the batch is fixed above 1 or the input is a scalar (the set is then `[N, *dims]`,
one whole input per row). Symbolic dims are filled from `--dim NAME=VALUE`, else from the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, param
from ..onnxio import TensorSig


@dataclass(frozen=True)
class Slot:
    """One model input as the builder fills it."""

    sig: TensorSig
    whole: bool  # each row is a whole input (rank + 1 in the set)
    template: tuple  # per-sample dims: int when known, None when the data must say

    @property
    def name(self) -> str:
        return self.sig.name

    def describe(self) -> str:
        return f"'{self.name}' (dims {list(self.sig.dims)})"


def slot_for(sig: TensorSig, dims: dict[str, int]) -> Slot:
    def known(d):
        if isinstance(d, int):
            return d
        if isinstance(d, str) and d in dims:
            return dims[d]
        return None

    full = tuple(known(d) for d in sig.dims)
    if not sig.dims:
        return Slot(sig, True, ())
    first = sig.dims[0]
    if isinstance(first, int) and first != 1:
        return Slot(sig, True, full)
    return Slot(sig, False, full[1:])


def fit(slot: Slot, shape: tuple, path: Path, where: str, *, flat_ok: bool = True, fix: str | None = None) -> tuple:
    """The sample shape for data whose rows have `shape`, or a one-line error.

    Rows of the template's rank must agree on every known dim. Otherwise (when `flat_ok`) the
    row's values are taken in order and reshaped: their count must equal the product of the
    known dims, with at most one unknown dim inferred from it.
    """
    t = slot.template
    if len(shape) == len(t) and all(w is None or w == g for w, g in zip(t, shape, strict=False)):
        return tuple(shape)
    size = math.prod(shape)
    want = _fmt(t)
    if not flat_ok:
        raise UserError(
            f"each row has shape {list(shape)}, input {slot.describe()} takes samples of shape {want}",
            subject=str(path),
            field=where,
            fix=f"reshape the data to [rows, {', '.join(map(str, _show(t)))}]",
        )
    unknown = [i for i, d in enumerate(t) if d is None]
    fixed = math.prod(d for d in t if d is not None)
    if not unknown:
        if size == fixed:
            return t
        raise UserError(
            f"each row gives {size} values, input {slot.describe()} takes {fixed} per sample (shape {want})",
            subject=str(path),
            field=where,
            fix=fix or f"give exactly {fixed} values per row",
        )
    if len(unknown) == 1 and fixed and size % fixed == 0 and size // fixed >= 1:
        out = list(t)
        out[unknown[0]] = size // fixed
        return tuple(out)
    names = [str(slot.sig.dims[i + (0 if slot.whole else 1)]) for i in unknown]
    raise UserError(
        f"each row gives {size} values and input {slot.describe()} has {len(unknown)} open dims ({', '.join(names)})",
        subject=str(path),
        field=where,
        fix="fix them with " + " ".join(f"{param('dims')} {n}=VALUE" for n in names),
    )


def _show(t):
    return ["?" if d is None else d for d in t]


def _fmt(t) -> str:
    return "[" + ", ".join(map(str, _show(t))) + "]"


def parse_dims(items) -> dict[str, int]:
    """`--dim NAME=VALUE` pairs."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            v = int(value)
        except ValueError:
            v = 0
        if not sep or not name or v < 1:
            raise UserError(
                "expected NAME=VALUE with a positive integer VALUE",
                subject=f"{param('dims')} {item}",
                fix=f"write it like {param('dims')} height=32",
            )
        out[name] = v
    return out
