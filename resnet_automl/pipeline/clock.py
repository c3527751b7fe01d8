"""The wall-clock budget of one `fit` call (no heavy imports: `fit` starts it before Keras loads)."""
from __future__ import annotations

import time

from resnet_automl.config.budget import Budget


class Clock:
    """The wall-clock budget of one fit call.

    Args:
        budget: the `Budget`; its `seconds` (None: no limit) set the deadline from now.
    """

    def __init__(self, budget: Budget):
        self.start = time.time()
        self.deadline = None if budget.seconds is None else self.start + budget.seconds

    def remaining(self) -> float:
        """Seconds left before the deadline (inf without one)."""
        return float("inf") if self.deadline is None else self.deadline - time.time()

    def elapsed(self) -> float:
        """Seconds since the fit started."""
        return time.time() - self.start
