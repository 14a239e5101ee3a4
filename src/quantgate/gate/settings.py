"""How the gate measures: sample counts, the seed, the caps of adaptive sampling."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError, param

DEFAULT_SEED = 0
# Adaptive sampling (gate/measure.py): a pilot of MIN_SAMPLES plans the first look, looks double
# up to MAX_SAMPLES, and the time cap is checked before each step. MIN_SAMPLES is also the fewest
# samples a verdict is decided on: a row measured on fewer is marginal by construction.
MIN_SAMPLES = 32
MAX_SAMPLES = 65536
MAX_SECONDS = 30.0
# A model whose ONNX Runtime calls are still running after this long becomes an error row.
MODEL_TIMEOUT = 600.0
# The first user's reference gate drew 16 samples.
REFERENCE_SAMPLES = 16
# Hard ceiling on any sample count: the sums and the bootstrap no longer grow with the count
# (gate/estimate.py), but the time does: 2^18 samples of a 1 ms model take 9 minutes.
SAMPLES_LIMIT = 1 << 18
# What a marginal row counts as (--on-marginal): fail, as any budget not shown to be met.
MARGINAL_POLICIES = ("fail", "warn", "pass")
DEFAULT_ON_MARGINAL = "fail"
BOOTSTRAP_STREAM = 0xB007  # the bootstrap's stream beside the input draws' (`bootstrap_seed`)


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
    # What a marginal row counts as: "fail", "warn" or "pass"; None: fail, or pass under
    # reference_compat (the reference method judged by the point estimate alone).
    on_marginal: str | None = None
    model_timeout: float = MODEL_TIMEOUT  # seconds; a model still running then is an error row

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
        if self.on_marginal is not None and self.on_marginal not in MARGINAL_POLICIES:
            raise UserError(
                f"{self.on_marginal!r} is not one of {', '.join(MARGINAL_POLICIES)}", subject=param("on_marginal")
            )
        t = self.model_timeout
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= float("inf")):
            raise UserError(f"{t!r} is not a positive number of seconds", subject=param("model_timeout"))

    @property
    def marginal_policy(self) -> str:
        """What a marginal row counts as in this run."""
        if self.on_marginal is not None:
            return self.on_marginal
        return "pass" if self.reference_compat else DEFAULT_ON_MARGINAL

    def fixed_samples(self, entry_samples: int | None) -> int | None:
        """The count a model is measured at, or None for adaptive sampling."""
        if self.samples is not None:
            return self.samples
        if entry_samples is not None:
            return entry_samples
        return REFERENCE_SAMPLES if self.reference_compat else None

    @property
    def bootstrap_seed(self) -> list[int]:
        """The bootstrap's seed, derived from `seed` (the one seed a run has): its draws and its
        replicates follow `--seed`, yet never share a stream."""
        return [self.seed, BOOTSTRAP_STREAM]

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
            "on_marginal": self.marginal_policy,
            "model_timeout": self.model_timeout if self.model_timeout != float("inf") else None,
            "avx2_check": self.avx2_check,
            "bench": self.bench,
            "symbolic_dim_default": DEFAULT_SYMBOLIC_DIM,
        }
