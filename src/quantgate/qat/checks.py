"""The checks behind every QAT config error: one table (`CHECKS`) with the type/range test of
each scalar key and the words that refuse it, shared by the config file and the command line's
overrides (`check_numbers`), and the structural checks (unknown keys, name lists, shapes).

Every refusal is one `UserError` line: `SOURCE: KEY: PROBLEM; FIX`. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

LOSSES = ("mse", "l1", "smooth_l1", "huber")
EXPORTERS = ("torchscript", "dynamo")
ACTIVATION_SCHEMES = ("asymmetric", "symmetric")


class Where:
    """The file (or `run_qat`) an error line starts with."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, what: str, fix: str) -> UserError:
        return UserError(what, subject=self.source, field=key, fix=fix)


def unknown_keys(w: Where, mapping: dict, allowed: set, prefix: str) -> None:
    for k in mapping:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), sorted(allowed), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(sorted(allowed))}"
            raise w.fail(f"{prefix}{k}", "unknown key", hint)


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(v):
    return v


@dataclass(frozen=True)
class Check:
    """A scalar key's type/range test and the words that refuse it. `problem` and the fixes are
    formatted with the value as `{v!r}` and the key's last part as `{leaf}`."""

    ok: Callable[[Any], bool]
    problem: str
    fix: str  # in the config file
    option_fix: str | None = None  # on the command line or in run_qat (default: `fix`)
    cast: Callable[[Any], Any] = _same
    optional: bool = False  # None leaves the key unset
    suggest: tuple = ()  # choices a near miss is pointed to

    def verify(self, w: Where, key: str, v, *, option: str | None = None):
        """`v` as the settings keep it, or the one-line refusal naming `key` (or `option`)."""
        if (self.optional and v is None) or self.ok(v):
            return v if v is None else self.cast(v)
        fix = (self.option_fix or self.fix) if option else self.fix
        fix = fix.format(leaf=key.split(".")[-1])
        near = difflib.get_close_matches(str(v), self.suggest, n=1) if self.suggest else []
        if near:
            fix += f" (did you mean '{near[0]}'?)"
        raise w.fail(option or key, self.problem.format(v=v), fix)


def _integer(lo: int, *, option_example: int | None = None, optional: bool = False) -> Check:
    example = max(lo, 1)
    return Check(
        lambda v: is_int(v) and v >= lo,
        f"expected an integer >= {lo}, got {{v!r}}",
        f"write e.g. {{leaf}}: {example}",
        f"pass e.g. {option_example or example}",
        optional=optional,
    )


def _positive(*, option_example: str = "0.001", optional: bool = False) -> Check:
    return Check(
        lambda v: is_num(v) and v > 0,
        "expected a positive number, got {v!r}",
        "write e.g. {leaf}: 0.001",
        f"pass e.g. {option_example}",
        cast=float,
        optional=optional,
    )


def _one_of(noun: str, choices: tuple, *, suggest: bool = False) -> Check:
    return Check(
        lambda v: v in choices,
        f"unknown {noun} {{v!r}}",
        f"use one of {', '.join(choices)}",
        suggest=choices if suggest else (),
    )


# The type/range check of every scalar key, by its place in the config file.
CHECKS: dict[str, Check] = {
    "loss": _one_of("loss", LOSSES, suggest=True),
    "lr": _positive(),
    "batch_size": _integer(1),
    "seed": _integer(0),
    "val_fraction": Check(
        lambda v: is_num(v) and 0 <= v < 0.9,
        "expected a number in [0, 0.9), got {v!r}",
        "write e.g. val_fraction: 0.1",
        cast=float,
    ),
    "data.samples": _integer(2),
    "data.seed": _integer(0),
    "qat.epochs_fp32": _integer(0),
    "qat.epochs_qat": _integer(0),
    "qat.lr_qat": _positive(option_example="0.0003", optional=True),
    "qat.opset": _integer(13, option_example=17, optional=True),
    "qat.exporter": _one_of("exporter", EXPORTERS),
    "qat.distill": Check(
        lambda v: is_num(v) and 0 <= v <= 1,
        "expected a number in [0, 1], got {v!r}",
        "1 = match the fp32 warm start's outputs, 0 = the target only",
        cast=float,
    ),
    "qat.reduce_range": Check(
        lambda v: isinstance(v, bool), "expected true or false, got {v!r}", "write reduce_range: true"
    ),
    "qat.activations": _one_of("scheme", ACTIVATION_SCHEMES),
    "qat.n_calibration": _integer(1),
}

# The settings an option (or a run_qat keyword) can override, in the order they are checked:
# setting -> (its key in the config file, the option's name)
_OPTIONS = {
    "epochs_fp32": ("qat.epochs_fp32", "--epochs-fp32"),
    "epochs_qat": ("qat.epochs_qat", "--epochs-qat"),
    "n_calibration": ("qat.n_calibration", "--n-calibration"),
    "seed": ("seed", "--seed"),
    "lr_qat": ("qat.lr_qat", "--lr-qat"),
    "exporter": ("qat.exporter", "exporter"),
    "opset": ("qat.opset", "opset"),
}


def check_numbers(s, *, label: str) -> None:
    """Range checks shared by config values and CLI overrides."""
    w = Where(s.source)
    for name, (key, option) in _OPTIONS.items():
        CHECKS[key].verify(w, key, getattr(s, name), option=option if label == "option" else None)


def name_list(w: Where, key: str, v) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v):
        raise w.fail(key, f"expected a list of names, got {v!r}", f"write e.g. {key.split('.')[-1]}: [input]")
    if len(set(v)) != len(v):
        raise w.fail(key, f"names repeat in {v}", "give every name once")
    return tuple(v)


def shape_list(w: Where, key: str, v) -> tuple[int, ...]:
    if not isinstance(v, list) or not v or not all(is_int(d) and d >= 1 for d in v):
        raise w.fail(
            key, f"expected a list of positive integers (batch first), got {v!r}", "write e.g. input_shape: [1, 6]"
        )
    return tuple(v)
