"""The final training's learning-rate schedule under a time budget: warm-up then cosine decay, set
once per epoch, whose length the final training re-plans from its own epoch times.

Why: the final training's epochs were planned from the search trials' epoch times, which were off
by up to 30% either way on 2 cores (trial epochs alternated 1.4 / 2.5 s while final epochs took
1.5 s; another run planned 2.9 s and ran 3.8 s). Too pessimistic, the fit ended a minute early;
too optimistic, the deadline cut the training before its learning rate decayed. A schedule with a
fixed step count cannot change its length once compiled (JAX bakes it into the compiled step), but
the optimiser's learning-rate variable is part of the training state on every backend, so a
callback that sets it at each epoch's start (as `keras.callbacks.LearningRateScheduler` does) can
follow a plan that changes.
"""
from __future__ import annotations

import time

import keras

from resnet_automl.modeling.classifier import warmup_cosine
from resnet_automl.planning.schedule import MARGIN_EPOCHS, margin_seconds
from resnet_automl.training.timing import EpochClock

__all__ = ["MARGIN_EPOCHS", "REPLAN_AFTER_EPOCHS", "ReplannedCosine", "epochs_fitting_after"]

#: Epochs timed, after the first (which builds and compiles the training step), before re-planning.
REPLAN_AFTER_EPOCHS = 3

def epochs_fitting_after(epochs_done: int, epoch_s: float, seconds_left: float, most: int) -> int:
    """Total epochs when `epochs_done` (int) have run, one takes `epoch_s` (float) seconds and
    `seconds_left` (float) remain before the deadline, keeping `schedule.margin_seconds` free
    (MARGIN_EPOCHS epochs, one where epochs are long): between `epochs_done + 1` and `most` (int).

    Example: 4 done, 2 s per epoch, 100 s left, most 200 -> 4 + 48 = 52.
    """
    more = int((seconds_left - margin_seconds(epoch_s, seconds_left)) / max(epoch_s, 1e-9))
    return int(min(most, max(epochs_done + 1, epochs_done + more)))


class ReplannedCosine(keras.callbacks.Callback):
    """Set the learning rate at each epoch's start from a warm-up + cosine schedule over `epochs`
    (`model.warmup_cosine`, read at the epoch's middle step), and re-plan `epochs` from the
    training's own epoch times so that it ends, decayed, before `deadline`.

    After REPLAN_AFTER_EPOCHS timed epochs (the first, which compiles, is not timed) the plan
    becomes, after each epoch, the epochs the time left holds at the mean epoch time so far
    (`epochs_fitting_after`, at most `most_epochs`). The mean of all timed epochs, not the last
    ones: on a shared 2-core machine single epochs take twice the usual time (a plan that followed
    the last three shrank 94 -> 69 epochs and left a minute unused), and the first epochs after
    compilation run slower (1.6, 2.0 s, then 1.0-1.3 s: a plan made once after three epochs ended a
    minute early). The mean, not the median: the sum of the epochs to come is their count times
    their mean, and on a host whose epochs alternate between two speeds (2.8 and 5.1 s, about half
    each, fm10-100 on an AVX2 host) the median sat on the fast one, and a plan that after its first
    half could only shrink ended 44 s (17%) before its deadline; both ways to the end, a plan's
    late changes are small (the mean moves little) and move a learning rate near its floor. Training stops
    when the plan is done, so `fit` should be given `most_epochs`. The model must be compiled with
    a constant learning rate (`model.compile_classifier(..., learning_rate_schedule=False)`).

    Args:
        learning_rate: float, the rate after warm-up.
        epochs: int, the plan to start with (from the search trials' epoch times).
        steps_per_epoch: int, optimiser steps per epoch.
        deadline: float or None, a `time.time()` value; None keeps `epochs` as it is.
        most_epochs: int or None, the most epochs a re-plan may choose. Defaults to `epochs`
            (re-planning only shortens).
        on_replan: callable(int) or None, called with each new plan (to record it for a resume).
    """

    def __init__(self, learning_rate: float, epochs: int, steps_per_epoch: int, deadline: float | None = None,
                 most_epochs: int | None = None, on_replan=None):
        super().__init__()
        self.learning_rate, self.steps_per_epoch = float(learning_rate), int(steps_per_epoch)
        self.epochs = int(epochs)
        self.most_epochs = max(self.epochs, int(most_epochs or self.epochs))
        self.deadline, self.on_replan = deadline, on_replan
        self.replans: list[tuple[int, int]] = []  # (after epoch, new plan)
        self.clock = EpochClock()
        self._rate = 0.0

    @property
    def epoch_seconds(self) -> float | None:
        """Mean seconds of the epochs timed so far (the first, which compiles, left out), or None."""
        return self.clock.mean()

    def rate(self, epoch: int) -> float:
        """Learning rate (float) of epoch `epoch` (0-based) under the current plan."""
        schedule = warmup_cosine(self.learning_rate, self.epochs * self.steps_per_epoch)
        return float(keras.ops.convert_to_numpy(schedule((epoch + 0.5) * self.steps_per_epoch)))

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.begin()
        self._rate = self.rate(epoch)
        self.model.optimizer.learning_rate = self._rate

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self.clock.end()
        if logs is not None:
            logs["learning_rate"] = self._rate
        done = epoch + 1
        if self.deadline is not None and self.clock.timed > REPLAN_AFTER_EPOCHS and done < self.epochs:
            fitting = epochs_fitting_after(done, self.epoch_seconds, self.deadline - now, self.most_epochs)
            if fitting != self.epochs:
                self.replans.append((done, fitting))
                self.epochs = fitting
                if self.on_replan is not None:
                    self.on_replan(fitting)
        if epoch + 1 >= self.epochs:
            self.model.stop_training = True
