"""How the gate measures: sample counts, the seed, the caps of adaptive sampling."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError, param

DEFAULT_SEED = 0
# Adaptive sampling: start here, double until decided and precise, stop at these caps. The
# bootstrap interval covers the truth about 94 % of the time from 256 samples (91 % at 64).
MIN_SAMPLES = 256
MAX_SAMPLES = 4096
MAX_SECONDS = 30.0
# The first user's reference gate drew 16 samples.
REFERENCE_SAMPLES = 16
# Hard ceiling on any sample count (a typo of 10**9 must not take the machine's memory or day).
SAMPLES_LIMIT = 1_000_000


@dataclass(frozen=True)
class GateSettings:
    samples: int | None = None  # None: adaptive; a number fixes the count for every model
    seed: int = DEFAULT_SEED
    # The first user's reference gate: first input only, first output only, 16 samples.
    reference_compat: bool = False
    min_samples: int = MIN_SAMPLES
    max_samples: int = MAX_SAMPLES
    max_seconds: float = MAX_SECONDS
    avx2_check: bool = False  # also measure each model under qemu-x86_64 -cpu Haswell
    bench: bool = False  # also time fp32 against int8 on this machine (never changes a verdict)

    def __post_init__(self) -> None:
        for name in ("samples", "min_samples", "max_samples"):
            v = getattr(self, name)
            if v is None and name == "samples":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= SAMPLES_LIMIT:
                raise UserError(
                    f"{v!r} is not a sample count from 1 to {SAMPLES_LIMIT:,}",
                    subject=param(name),
                    fix=f"leave it out for adaptive sampling ({MIN_SAMPLES} to {MAX_SAMPLES} samples)",
                )
        if self.min_samples > self.max_samples:
            raise UserError(
                f"{self.min_samples} is above {param('max_samples')} {self.max_samples}", subject=param("min_samples")
            )
        if not (isinstance(self.max_seconds, (int, float)) and 0 < self.max_seconds < float("inf")):
            raise UserError(f"{self.max_seconds!r} is not a positive number of seconds", subject=param("max_seconds"))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise UserError(f"{self.seed!r} is not a non-negative whole number", subject=param("seed"))

    def fixed_samples(self, entry_samples: int | None) -> int | None:
        """The count a model is measured at, or None for adaptive sampling."""
        if self.samples is not None:
            return self.samples
        if entry_samples is not None:
            return entry_samples
        return REFERENCE_SAMPLES if self.reference_compat else None

    def to_json(self) -> dict:
        from ..inputs import DEFAULT_SYMBOLIC_DIM

        return {
            "samples": self.samples,
            "seed": self.seed,
            "reference_compat": self.reference_compat,
            "adaptive": {
                "min_samples": self.min_samples,
                "max_samples": self.max_samples,
                "max_seconds": self.max_seconds,
            },
            "avx2_check": self.avx2_check,
            "bench": self.bench,
            "symbolic_dim_default": DEFAULT_SYMBOLIC_DIM,
        }
