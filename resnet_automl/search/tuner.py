"""Keras Tuner search: oracle choice, a time-aware stop, per-trial timings and progress lines.

Keras Tuner owns the loop, the project folder and resume (an interrupted trial is re-queued with
the same hyperparameters); this module only adds what it lacks: a wall-clock budget, a trials
table with seconds per trial, and bounded disk: each trial's best epoch is kept in memory and
written once without optimizer state (`callbacks.KeepBestEpoch`), and only the best trial's
checkpoint is kept once a trial ends.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path

import keras
import keras_tuner as kt

from resnet_automl.config.options import TUNERS
from resnet_automl.errors import ConfigError
from resnet_automl.runtime import interrupts
from resnet_automl.runtime.files import write_json_atomic
from resnet_automl.runtime.progress import live_progress
from resnet_automl.training.callbacks import EpochScalars, EpochTimer, KeepBestEpoch
from resnet_automl.weights.io import load_weights

logger = logging.getLogger(__name__)

#: A trial's checkpoint inside its Keras Tuner trial folder (the name Keras Tuner itself uses on Keras 3).
CHECKPOINT_FILE = "checkpoint.weights.h5"


class SearchFailedError(RuntimeError):
    """Keras Tuner stopped the search after `failures` trials in a row failed; `last` is the last reason."""

    def __init__(self, failures: int, last: str):
        super().__init__(f"{failures} trials in a row failed (last: {last})")
        self.failures, self.last = failures, last


def consecutive_failures(oracle) -> tuple[int, str]:
    """(number of trials that failed in a row at the end of the search, the last one's message)."""
    count, last = 0, ""
    for trial in sorted(oracle.trials.values(), key=lambda item: int(item.trial_id), reverse=True):
        if trial.status != kt.engine.trial.TrialStatus.FAILED:
            break
        if not last:
            lines = (trial.message or "").strip().splitlines()
            last = lines[-1] if lines else "no message"
        count += 1
    return count, last


class _StopsWhenOutOfTime:
    """Oracle mixin: the first trials run `openings` (partial values over the space's defaults,
    the centre of the space: see `ResNetHyperModel.declare`; not for Hyperband, whose brackets set
    the trial), by default one trial at the defaults, so a budget that holds one trial gets a
    sensible one; after that the oracle proposes, and answers STOPPED instead of a new trial once
    `should_stop()` says so."""

    should_stop = None
    #: list of dicts, values of the first trials over the defaults; None: one trial at the defaults.
    openings = None

    def populate_space(self, trial_id):
        if self.should_stop is not None and self.should_stop():
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
        others = sum(1 for t in self.trials.values() if t.trial_id != trial_id)
        openings = self.openings if self.openings is not None else [{}]
        if others < len(openings) and self.hyperparameters.space and not isinstance(self, kt.oracles.HyperbandOracle):
            values = {hp.name: hp.default for hp in self.hyperparameters.space}
            values.update({k: v for k, v in openings[others].items() if k in values})
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}
        return super().populate_space(trial_id)


class BayesianOracle(_StopsWhenOutOfTime, kt.oracles.BayesianOptimizationOracle):
    """Gaussian-process Bayesian optimisation that respects the time budget."""


class RandomOracle(_StopsWhenOutOfTime, kt.oracles.RandomSearchOracle):
    """Random search that respects the time budget."""


class HyperbandOracle(_StopsWhenOutOfTime, kt.oracles.HyperbandOracle):
    """Hyperband that respects the time budget."""


class TimedTuner(kt.Tuner):
    """A Keras Tuner `Tuner` that records seconds per trial and logs one line per trial.

    It extends Keras Tuner through its documented hooks: `run_trial` (build with the hypermodel,
    fit with it, as Keras Tuner's own documentation shows), `on_trial_begin`/`on_trial_end`, and
    `load_model`. A trial's best epoch is kept in memory and written once, without optimizer state
    (`callbacks.KeepBestEpoch`), instead of Keras Tuner's checkpoint at every better epoch.
    Timings persist in `<project>/trial_seconds-<tuner id>.json` (one file per process, so
    distributed workers never write the same file) and survive resume.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = {}
        #: Seconds the fit needs after the search (final training, export, report), for the ETA.
        self.after_search_seconds = 0.0
        #: Live progress line per trial on a terminal: None (when stdout is one), True or False.
        self.live_progress = None
        #: Callable returning the seconds left in the fit's budget (shown on the live line), or None.
        self.budget_left = None
        #: Epochs per trial (shown on the live line).
        self.epochs = 1
        #: Seconds of each epoch of the trials that trained the whole model, in this process.
        self.full_model_epoch_seconds = []
        self.timings_path = Path(self.project_dir) / f"trial_seconds-{self.tuner_id}.json"

    @property
    def trial_seconds(self) -> dict:
        """{trial id: seconds} over every process that ran trials in this project."""
        merged = {}
        for path in sorted(Path(self.project_dir).glob("trial_seconds-*.json")):
            try:
                merged.update(json.loads(path.read_text()))
            except (OSError, ValueError):  # a file being replaced right now
                continue
        return merged

    def checkpoint_path(self, trial_id) -> str:
        """The weights file of trial `trial_id` (written by `KeepBestEpoch`)."""
        return os.path.join(self.get_trial_dir(trial_id), CHECKPOINT_FILE)

    def _trial_callbacks(self, trial, callbacks: list, epochs: int) -> list:
        """The search's callbacks copied for this trial (each trial needs fresh ones), with per-trial
        TensorBoard folders, the best-epoch checkpoint, the live line and the epoch timer."""
        callbacks = [copy.deepcopy(callback) for callback in callbacks]
        for callback in list(callbacks):
            if isinstance(callback, (EpochScalars, keras.callbacks.TensorBoard)):
                callback.log_dir = os.path.join(callback.log_dir, str(trial.trial_id))
            if isinstance(callback, keras.callbacks.TensorBoard):  # TensorBoard's HParams view of the trials
                from tensorboard.plugins.hparams import api as hparams_api

                callbacks.append(hparams_api.KerasCallback(callback.log_dir, dict(trial.hyperparameters.values),
                                                           trial_id=str(trial.trial_id)))
        describe = getattr(self.hypermodel, "weights_metadata", None)
        callbacks.append(KeepBestEpoch(self.oracle.objective, self.checkpoint_path(trial.trial_id),
                                       describe(trial.hyperparameters) if describe else None))
        total = self.oracle.max_trials or "?"
        label = f"trial {trial.trial_id} ({int(trial.trial_id) + 1}/{total})"
        progress = live_progress(label, epochs, self.budget_left, self.oracle.objective.name,
                                 enabled=self.live_progress)
        if progress is not None:
            callbacks.append(progress)
        if not getattr(self.hypermodel, "uses_feature_cache", lambda hp: False)(trial.hyperparameters):
            callbacks.append(EpochTimer(self.full_model_epoch_seconds))
        return callbacks

    def _build(self, hp):
        """The hypermodel's model for `hp`, on a fresh Keras session (as Keras Tuner builds each trial)."""
        keras.backend.clear_session()
        if self.distribution_strategy is None:
            return self.hypermodel.build(hp)
        with self.distribution_strategy.scope():
            return self.hypermodel.build(hp)

    def run_trial(self, trial, *args, **kwargs):
        """Build the trial's model with the hypermodel and fit it with the hypermodel (one execution)."""
        callbacks = self._trial_callbacks(trial, kwargs.pop("callbacks", []), kwargs.get("epochs", self.epochs))
        hp = trial.hyperparameters
        return self.hypermodel.fit(hp, self._build(hp), *args, callbacks=callbacks, **kwargs)

    def search(self, *args, **kwargs):
        """Keras Tuner's search; a stop after too many failed trials in a row raises `SearchFailedError`."""
        try:
            return super().search(*args, **kwargs)
        except RuntimeError as exc:
            failures, last = consecutive_failures(self.oracle)
            if failures and failures >= self.oracle.max_consecutive_failed_trials:
                raise SearchFailedError(failures, last) from exc
            raise

    def load_model(self, trial):
        """The trial's model with its best epoch's weights (no optimizer state is read)."""
        model = self._build(trial.hyperparameters)
        load_weights(model, self.checkpoint_path(trial.trial_id))
        return model

    def prune_checkpoints(self) -> int:
        """Delete the checkpoints of finished trials other than the best; return how many.

        Runs where the oracle's trials are known (one process, or the chief when the search ends);
        a distributed worker prunes nothing, since it sees only its own trials.
        """
        if not hasattr(self.oracle, "trials"):
            return 0
        best = best_trial(self.oracle)
        removed = 0
        for trial_id, trial in list(self.oracle.trials.items()):
            if trial.status == kt.engine.trial.TrialStatus.RUNNING or (best is not None and trial_id == best.trial_id):
                continue
            path = Path(self.checkpoint_path(trial_id))
            if path.exists():
                path.unlink()
                removed += 1
        return removed

    def on_trial_begin(self, trial):
        interrupts.check()
        super().on_trial_begin(trial)
        self._started[trial.trial_id] = time.time()

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.prune_checkpoints()
        seconds = time.time() - self._started.pop(trial.trial_id, time.time())
        mine = json.loads(self.timings_path.read_text()) if self.timings_path.exists() else {}
        mine[trial.trial_id] = round(seconds, 2)
        write_json_atomic(self.timings_path, mine)
        done = len(self.trial_seconds)
        score = "failed" if trial.score is None else f"{self.oracle.objective.name} {trial.score:.4f}"
        values = ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.hyperparameters.values.items())
        left = max(0, (self.oracle.max_trials or done) - done)
        eta = left * self.mean_trial_seconds() + self.after_search_seconds
        logger.info(f"[trial {trial.trial_id}] {values} -> {score} ({trial.status.lower()}) in {seconds:.0f} s;"
                  f" {done} trial(s) done, ETA {eta / 60:.1f} min")
        interrupts.check()

    def mean_trial_seconds(self) -> float | None:
        """Average seconds of the trials run so far (this process and earlier ones)."""
        seconds = self.trial_seconds
        return sum(seconds.values()) / len(seconds) if seconds else None


def make_tuner(kind: str, hypermodel, *, objective: str, max_trials: int, directory, seed: int = 0,
               overwrite: bool = False, epochs: int = 3, **tuner_options) -> TimedTuner:
    """Build the tuner.

    Args:
        kind: "bayesian" (default of `fit`: a Gaussian process is sample-efficient on a 2-3
            dimensional space where each trial is expensive), "hyperband" or "random".
        hypermodel: the `ResNetHyperModel`.
        objective: str, metric to maximise ("val_accuracy" or "val_balanced_accuracy").
        max_trials: int, trials in total (for hyperband: the cap on trials).
        directory: folder holding the Keras Tuner project "tuner" (resume reads it).
        seed: int, oracle seed. Defaults to 0.
        overwrite: bool, start again instead of resuming. Defaults to False (resume).
        epochs: int, epochs per trial (hyperband's max_epochs). Defaults to 3.
        **tuner_options: further keyword arguments of `keras_tuner.Tuner` (`distribution_strategy`).

    The returned tuner runs the search; set `tuner.oracle.should_stop` (a callable: no new trial
    starts once it returns True), `tuner.live_progress` and `tuner.budget_left` to tie it to a
    time budget.
    """
    if kind not in TUNERS:
        raise ConfigError(f"The `tuner` argument must be one of {TUNERS}. Received: tuner={kind!r}")
    goal = kt.Objective(objective, direction="max")
    if kind == "bayesian":
        oracle = BayesianOracle(objective=goal, max_trials=max_trials, seed=seed,
                                num_initial_points=min(max_trials, 3))
    elif kind == "random":
        oracle = RandomOracle(objective=goal, max_trials=max_trials, seed=seed)
    else:
        oracle = HyperbandOracle(objective=goal, max_epochs=max(epochs, 2), factor=3, seed=seed,
                                 hyperband_iterations=1)
    tuner = TimedTuner(oracle=oracle, hypermodel=hypermodel, directory=str(directory), project_name="tuner",
                       overwrite=overwrite, **tuner_options)
    tuner.epochs = epochs
    return tuner


def trials_table(tuner: TimedTuner) -> list:
    """One dict per trial: id, hyperparameters, score, seconds, status, message (failures)."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items(), key=lambda item: int(item[0])):
        message = (trial.message or "").strip().splitlines()
        rows.append({
            "trial_id": trial_id,
            "hyperparameters": dict(trial.hyperparameters.values),
            "score": None if trial.score is None else float(trial.score),
            "seconds": tuner.trial_seconds.get(trial_id),
            "status": trial.status,
            "message": message[-1] if message else "",
        })
    return rows


def best_trial(oracle, tie_breaker: str = "val_loss"):
    """The completed trial with the best objective; ties are broken by the lowest `tie_breaker`.

    On small validation sets accuracy moves in coarse steps (60 images: 1.7 points each), so
    several trials often share the best score; the loss at each trial's best epoch is a finer
    measure of the same validation images. Returns None when no trial completed.
    """
    completed = [t for t in oracle.trials.values() if t.status == kt.engine.trial.TrialStatus.COMPLETED
                 and t.score is not None]
    if not completed:
        return None
    maximise = oracle.objective.direction == "max"
    top = max(t.score for t in completed) if maximise else min(t.score for t in completed)
    tied = [t for t in completed if t.score == top]

    def loss_at_best_step(trial) -> float:
        if not trial.metrics.exists(tie_breaker):
            return float("inf")
        history = trial.metrics.get_history(tie_breaker)
        at_best = [obs.mean() for obs in history if obs.step == trial.best_step]
        values = at_best or [obs.mean() for obs in history]
        return float(min(values)) if values else float("inf")

    return min(tied, key=loss_at_best_step)  # min keeps the earliest trial among equal losses
