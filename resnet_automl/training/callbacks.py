"""Keras callbacks used by the search and the final training."""
from __future__ import annotations

import time

import keras
import numpy as np
from sklearn.metrics import hamming_loss

from resnet_automl.training.metrics import validation_logs
from resnet_automl.training.timing import EpochClock


class DeadlineCallback(keras.callbacks.Callback):
    """Stop training when the next epoch would end after `deadline` (a `time.time()` value).

    The next epoch is assumed to last as long as the slowest one so far, leaving out the first
    once later ones are measured: the first also builds and compiles the training step (15-25 s
    on 2 cores against 1-2 s for an epoch of a small set), and counting it stopped 6-minute final
    trainings 14-22 epochs before their end, with the learning-rate schedule not yet decayed.
    """

    def __init__(self, deadline: float | None):
        super().__init__()
        self.deadline = deadline
        self.stopped_for_time = False
        self._epoch_start = 0.0
        self._durations: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def next_epoch_seconds(self) -> float:
        """Seconds the next epoch is assumed to take (0.0 before any epoch ended)."""
        later = self._durations[1:]
        return max(later) if later else (self._durations[0] if self._durations else 0.0)

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self._durations.append(now - self._epoch_start)
        if self.deadline is not None and now + self.next_epoch_seconds() > self.deadline:
            self.stopped_for_time = True
            self.model.stop_training = True


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' `TerminateOnNaN` (stop when a batch's loss is NaN or infinite), marked `async_safe`.

    Any batch-end hook without that mark turns Keras' asynchronous dispatch off on JAX and PyTorch:
    each step is then waited for before the next batch is gathered on the host, which halved
    training throughput on one H200 (benchmarks/gpu_check.py). Keras' own check only reads the
    loss and sets `stop_training`, which is safe from its callback thread: training stops a few
    batches later at most.
    """

    async_safe = True


class ScoredValidation(keras.callbacks.Callback):
    """The epoch's validation scored by scikit-learn from one prediction pass: adds
    `metrics.validation_logs` (val_accuracy, val_loss, and val_balanced_accuracy or val_map) to the
    epoch logs, keeping what Keras' own evaluation logged. Run `fit` without `validation_data` and
    this is the epoch's only pass over the validation images (one pass instead of two).

    Must come before the callbacks that read the logs (early stopping, Keras Tuner's checkpoint and
    reporting). The callbacks in `listeners` hear the pass as they hear Keras' own evaluation
    (`on_test_begin`, `on_test_end`): the timers then count it as validation, not training.

    Args:
        val_dataset: `ArrayBatches` of the validation images (or a dataset of their cached features).
        labels: their labels, [N] or multi-hot [N, C].
        multilabel: bool, sigmoid outputs scored by mean average precision ("val_map"). Defaults to False.
        balanced: bool, add "val_balanced_accuracy" (single-label). Defaults to False.
        listeners: list of callbacks told where the pass begins and ends. Defaults to none.
        as_compiled: bool, "val_loss" and "val_accuracy" as Keras' evaluation would log them (the
            model's compiled loss; binary accuracy at 0.5 for `multilabel`), so that they read like
            the training curves' loss and accuracy. Defaults to False (`metrics.validation_logs`).
    """

    def __init__(self, val_dataset, labels, *, multilabel: bool = False, balanced: bool = False,
                 listeners: list | None = None, as_compiled: bool = False):
        super().__init__()
        self.val_dataset = val_dataset
        self.labels = np.asarray(labels)
        self.multilabel, self.balanced = multilabel, balanced
        self.listeners = list(listeners or [])
        self.as_compiled = as_compiled

    def on_epoch_end(self, epoch, logs=None):
        for listener in self.listeners:
            listener.on_test_begin({})
        try:
            probabilities = self.model.predict(self.val_dataset, verbose=0)
        finally:
            for listener in self.listeners:
                listener.on_test_end({})
        if logs is not None:
            scored = validation_logs(probabilities, self.labels, multilabel=self.multilabel, balanced=self.balanced)
            if self.as_compiled:
                scored.update(self._compiled_logs(probabilities))
            for name, value in scored.items():
                logs.setdefault(name, value)

    def _compiled_logs(self, probabilities) -> dict:
        """val_loss by the model's compiled loss; for `multilabel`, val_accuracy as its compiled
        binary accuracy reads (1 - scikit-learn's Hamming loss at 0.5; single-label accuracy is
        already Keras' own)."""
        labels = keras.ops.convert_to_tensor(self.labels, "float32" if self.multilabel else None)
        loss = self.model.loss(labels, keras.ops.convert_to_tensor(probabilities))
        logs = {"val_loss": float(keras.ops.convert_to_numpy(loss))}
        if self.multilabel:
            logs["val_accuracy"] = 1.0 - float(hamming_loss(self.labels > 0.5, np.asarray(probabilities) > 0.5))
        return logs


class EpochTimer(keras.callbacks.Callback):
    """Append the training seconds of every epoch but the first of each `fit` to `durations` (a
    list), validation left out (`timing.EpochClock` with `training_only`): a search trial's epoch
    timed whole ran about 20% longer than a final-training epoch on the same images. (No per-batch
    hook: one turns Keras' asynchronous dispatch off and slowed the trials it timed.) The first
    epoch's seconds, which include building and compiling the training step, go to `first_durations`
    (a list, or None to drop them). Defaults to None."""

    def __init__(self, durations: list, first_durations: list | None = None):
        super().__init__()
        self.durations, self.first_durations = durations, first_durations
        self.clock = EpochClock(training_only=True)

    def on_train_begin(self, logs=None):
        self.clock.reset()

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.begin()

    def on_test_begin(self, logs=None):
        self.clock.validating()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.clock.end()
        if seconds is not None:
            self.durations.append(seconds)
        elif self.first_durations is not None:
            self.first_durations.append(self.clock.first_s)


class KeepBestEpoch(keras.callbacks.Callback):
    """Keep the best epoch's weights in memory and write them once, when training ends.

    Replaces Keras Tuner's `SaveBestEpoch`, which rewrites the weights and the optimizer state at
    every better epoch. The snapshot covers `self.model` (a cached trial's trainable tail, or the
    whole classifier); the file is written from `save_model` (the whole classifier), without
    optimizer state, through `weights_io.save_weights`.

    Args:
        objective: a Keras Tuner `Objective` (`has_value`, `get_value`, `better_than`).
        filepath: str, the trial's checkpoint (`.weights.h5`).
        metadata: dict or None, the description stored with the weights (`weights_io.save_weights`).
        write_if: callable(best value) -> bool, or None. When it returns False at the end of training
            (the trial lost to an earlier one, whose checkpoint is kept instead) the file is not
            written. Defaults to None (always written).
        timer: an object whose `time("checkpoint")` is a context manager counting the seconds spent
            here (`search.phases.TrialPhases`), or None. Defaults to None.
    """

    def __init__(self, objective, filepath, metadata=None, write_if=None, timer=None):
        super().__init__()
        self.objective, self.filepath, self.metadata = objective, filepath, metadata
        self.write_if, self.timer = write_if, timer
        self.best_value = float("-inf") if objective.direction == "max" else float("inf")
        self.save_model = None
        self._best = None

    def _timed(self):
        import contextlib

        return self.timer.time("checkpoint") if self.timer is not None else contextlib.nullcontext()

    def on_epoch_end(self, epoch, logs=None):
        if self.objective.has_value(logs):
            current = self.objective.get_value(logs)
            if not self.objective.better_than(current, self.best_value):
                return
            self.best_value = current
        with self._timed():
            self._best = [np.array(variable.numpy()) for variable in self.model.weights]

    def on_train_end(self, logs=None):
        from resnet_automl.weights.io import save_weights

        with self._timed():
            if self._best is not None:
                for variable, value in zip(self.model.weights, self._best, strict=True):
                    variable.assign(value)
                self._best = None
            if self.write_if is None or self.write_if(self.best_value):
                save_weights(self.save_model or self.model, self.filepath, self.metadata)


class EpochScalars(keras.callbacks.Callback):
    """Epoch metrics as TensorBoard scalars without TensorFlow (`tensorboard.summary.Writer`).

    Writes `epoch_<metric>` under `log_dir/train` and `log_dir/validation`, as Keras' TensorBoard
    callback does, so both show the same in TensorBoard.

    Args:
        log_dir: str, the folder of this run's event files.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(log_dir)
        self._writers = None

    def on_train_begin(self, logs=None):
        import sys
        import types

        if "tensorflow" not in sys.modules:  # tensorboard's documented switch to its TF-free file API
            sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
        from tensorboard.summary import Writer

        self._writers = {part: Writer(f"{self.log_dir}/{part}") for part in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            if self._writers is None or not np.isscalar(value) and np.ndim(value) != 0:
                continue
            part, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            self._writers[part].add_scalar(f"epoch_{tag}", float(value), epoch)
        for writer in (self._writers or {}).values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in (self._writers or {}).values():
            writer.close()
        self._writers = None


def tensorboard_callback(log_dir) -> keras.callbacks.Callback:
    """Keras' TensorBoard callback on the TensorFlow backend (Keras Tuner adds its HParams view to
    it); `EpochScalars` on the others, which needs no TensorFlow."""
    if keras.backend.backend() == "tensorflow":
        return keras.callbacks.TensorBoard(str(log_dir), write_graph=False)
    return EpochScalars(log_dir)


class PeriodicBackup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` that writes at an epoch's end only when `min_interval_s` have
    passed since the last backup (default 60 s).

    A backup holds the weights and the optimizer state (for Adam, three times the model); written
    every epoch of a 30-epoch final training that is 30 full rewrites. An interruption now loses
    at most about a minute of training. The backup is deleted when training ends.

    `async_safe`: its batch-end hook acts only with a batch `save_freq` (the default is "epoch"), so
    it need not turn Keras' asynchronous dispatch off (see `StopOnNaN`).
    """

    async_safe = True

    def __init__(self, backup_dir, min_interval_s: float = 60.0, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.min_interval_s = min_interval_s
        self._last_backup = time.time()

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._last_backup = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if time.time() - self._last_backup >= self.min_interval_s:
            super().on_epoch_end(epoch, logs)
            self._last_backup = time.time()
        else:
            self._current_epoch = epoch + 1
