"""Keras callbacks used by the search and the final training."""
from __future__ import annotations

import time

import keras
import numpy as np
from sklearn.metrics import balanced_accuracy_score


class DeadlineCallback(keras.callbacks.Callback):
    """Stop training when the next epoch would end after `deadline` (a `time.time()` value).

    The next epoch is assumed to last as long as the slowest one so far.
    """

    def __init__(self, deadline: float | None):
        super().__init__()
        self.deadline = deadline
        self.stopped_for_time = False
        self._epoch_start = 0.0
        self._slowest = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self._slowest = max(self._slowest, now - self._epoch_start)
        if self.deadline is not None and now + self._slowest > self.deadline:
            self.stopped_for_time = True
            self.model.stop_training = True


class BalancedAccuracyCallback(keras.callbacks.Callback):
    """Add `val_balanced_accuracy` (scikit-learn) to the epoch logs, for imbalanced data.

    Must run before callbacks that read the logs (Keras Tuner's checkpoint and reporting).
    """

    def __init__(self, val_dataset, labels):
        super().__init__()
        self.val_dataset = val_dataset
        self.labels = np.asarray(labels)

    def on_epoch_end(self, epoch, logs=None):
        probabilities = self.model.predict(self.val_dataset, verbose=0)
        score = balanced_accuracy_score(self.labels, np.argmax(probabilities, axis=1))
        if logs is not None:
            logs["val_balanced_accuracy"] = float(score)
