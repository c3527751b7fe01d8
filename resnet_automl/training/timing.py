"""Epoch timing shared by the search, the final training and the benchmarks.

The first epoch of a `fit` builds and compiles the training step: a trial cut to one epoch by the
deadline once recorded 15 s for a 1.1 s epoch, and a final training planned from it ran 4 epochs
of a budget's 137. Every epoch time this package plans with therefore leaves the first out.
"""
from __future__ import annotations

import time


class EpochClock:
    """Seconds of the epochs of one `fit`, the first (compilation) kept apart.

    Args:
        training_only: bool, time an epoch from its start to the start of its validation (or its
            end without validation), leaving validating and the other callbacks' work at the epoch's
            end out; False times the whole epoch. Defaults to False.

    Call `begin()` at an epoch's start, `validating()` when its validation starts (optional) and
    `end()` at its end; `seconds` holds the epochs after the first.
    """

    def __init__(self, training_only: bool = False):
        self.training_only = training_only
        self.first_s: float | None = None
        self.seconds: list[float] = []
        self._started, self._trained = 0.0, None

    def reset(self) -> None:
        """Forget the epochs timed so far (a new `fit` compiles again)."""
        self.first_s, self.seconds = None, []

    def begin(self) -> None:
        self._started, self._trained = time.time(), None

    def validating(self) -> None:
        if self._trained is None:
            self._trained = time.time()

    def end(self) -> float | None:
        """Record the epoch that ends now; return its seconds, or None for the first (compiling) one."""
        stop = (self._trained or time.time()) if self.training_only else time.time()
        seconds = stop - self._started
        if self.first_s is None:
            self.first_s = seconds
            return None
        self.seconds.append(seconds)
        return seconds

    @property
    def timed(self) -> int:
        """Epochs ended so far, the first included."""
        return len(self.seconds) + (self.first_s is not None)

    def mean(self) -> float | None:
        """Mean seconds of the epochs after the first, or None before there is one."""
        return sum(self.seconds) / len(self.seconds) if self.seconds else None
