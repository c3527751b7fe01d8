"""Where a trial's seconds go: build, weights, probe, features, compile, train, validate, checkpoint, log.

A `TrialPhases` is handed to the hypermodel for one trial; each step of the trial runs under
`phases.time("name")`, the Keras callback `ValidationTimer` separates validation from training
inside `fit`, and the tuner adds its own bookkeeping ("log"). The result is one dict per trial in
run.json's trials table, so a slow search shows which fixed cost to cut.
"""
from __future__ import annotations

import contextlib
import time

import keras

#: The phases in the order a trial runs them.
#: build: the Keras model built (or a built one reset); weights: the starting weights loaded or
#: restored; features: the forward passes whose output is kept (the pooled features the linear probe
#: fits, the frozen-prefix feature cache computed or read); probe: the logistic-regression fit of the
#: head (LP-FT); compile: `model.compile`; train: `fit` without its
#: validation and checkpoint (the first step's tracing included); validate: validation passes;
#: checkpoint: the best epoch kept and written; log: Keras Tuner's trial files, the timings file and
#: the log line.
PHASES = ("build", "weights", "features", "probe", "compile", "train", "validate", "checkpoint", "log")


class TrialPhases:
    """Seconds per phase of one trial (`PHASES`), accumulated.

    Attributes:
        seconds: dict {phase: float seconds}, only the phases that ran.
    """

    def __init__(self):
        self.seconds: dict = {}

    def add(self, phase: str, seconds: float) -> None:
        """Add `seconds` (float) to `phase` (str, one of `PHASES`)."""
        if phase not in PHASES:
            raise ValueError(f"unknown trial phase {phase!r}; expected one of {PHASES}")
        self.seconds[phase] = self.seconds.get(phase, 0.0) + float(seconds)

    @contextlib.contextmanager
    def time(self, phase: str):
        """Count the seconds of the `with` block into `phase`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)

    def rounded(self) -> dict:
        """{phase: seconds rounded to 10 ms}, in `PHASES` order."""
        return {phase: round(self.seconds[phase], 2) for phase in PHASES if phase in self.seconds}


class ValidationTimer(keras.callbacks.Callback):
    """Times `fit` into `phases`: validation passes as "validate", the rest as "train" (less what
    other phases, such as "checkpoint", counted while `fit` ran).

    Args:
        phases: the trial's `TrialPhases`.
    """

    def __init__(self, phases: TrialPhases):
        super().__init__()
        self.phases = phases
        self._fit_started = self._test_started = None
        self._others_at_start = 0.0

    def _others(self) -> float:
        return sum(v for k, v in self.phases.seconds.items() if k not in ("train", "validate"))

    def on_train_begin(self, logs=None):
        self._fit_started, self._others_at_start = time.perf_counter(), self._others()
        self._validated = 0.0

    def on_test_begin(self, logs=None):
        self._test_started = time.perf_counter()

    def on_test_end(self, logs=None):
        if self._test_started is not None and self._fit_started is not None:
            spent = time.perf_counter() - self._test_started
            self._validated += spent
            self.phases.add("validate", spent)
        self._test_started = None

    def on_train_end(self, logs=None):
        if self._fit_started is None:
            return
        spent = time.perf_counter() - self._fit_started
        others = self._others() - self._others_at_start
        self.phases.add("train", max(0.0, spent - self._validated - others))
        self._fit_started = None
