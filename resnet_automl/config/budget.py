"""`Budget`: what a fit may spend (time, trials) and what the model may cost (params, FLOPs, latency)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from resnet_automl.config.schema import check_fields
from resnet_automl.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    """Limits of one `fit`, validated on construction by the rows of `schema.OPTIONS` whose owner
    is "budget" (one row per field).

    Args:
        minutes: float or None, hard wall-clock cap on the whole fit (search, final training,
            export and report). The search stops starting trials when the rest is needed for the
            final training; a fit that runs out of time still exports its best model. None: no cap.
        max_trials: int or None, tuner trials. None: 6; when only the learning rate is searched (one
            frozen depth and one backbone), 3 with pretrained weights and 1 from random
            initialisation; under `minutes` the search may stop sooner.
        max_params: int or None, cap on backbone parameters (1000-class count of the registry).
        max_gflops: float or None, cap on GFLOPs per image at the chosen image size.
        max_latency_ms: float or None, cap on batch-1 latency measured on this device.

    Example:
        >>> Budget(minutes=30, max_latency_ms=20)
    """

    minutes: float | None = None
    max_trials: int | None = None
    max_params: int | None = None
    max_gflops: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self):
        check_fields(self, "budget")

    @property
    def seconds(self) -> float | None:
        """The time cap in seconds, or None."""
        return None if self.minutes is None else 60.0 * self.minutes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, name: str) -> "Budget":
        """A named budget: "cpu-quick", "edge", "balanced" or "max-accuracy" (see `PRESETS`)."""
        if name not in PRESETS:
            raise ConfigError(f"Unknown budget preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**PRESETS[name])


#: Named budgets for common jobs: each is the [budget] section of the recipe of the same name in
#: recipes/ (a test keeps them equal), so `budget="edge"` and `--recipe recipes/edge.toml` limit alike.
PRESETS = {
    "cpu-quick": {"minutes": 10, "max_trials": 4},
    "edge": {"minutes": 60, "max_params": 25_000_000, "max_latency_ms": 30},
    "balanced": {"minutes": 60, "max_trials": 10},
    "max-accuracy": {"minutes": 240, "max_trials": 20},
}
