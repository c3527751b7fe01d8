"""Keras Tuner search: oracle choice, a time-aware stop, per-trial timings and progress lines.

Keras Tuner owns the loop, the project folder and resume (an interrupted trial is re-queued with
the same hyperparameters); this module only adds what it lacks: a wall-clock budget, a trials
table with seconds per trial, and bounded disk: each trial's best epoch is kept in memory and
written once without optimizer state (`callbacks.KeepBestEpoch`), and only the best trial's
checkpoint is kept once a trial ends.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras_tuner as kt

from resnet_automl.runtime import interrupts
from resnet_automl.training.callbacks import EpochScalars, EpochTimer, KeepBestEpoch
from resnet_automl.errors import ConfigError
from resnet_automl.config.options import TUNERS
from resnet_automl.runtime.progress import live_progress
from resnet_automl.weights.io import load_weights


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
    """A Keras Tuner `Tuner` that records seconds per trial and prints one line per trial.

    Timings persist in `<project>/trial_seconds-<tuner id>.json` (one file per process, so
    distributed workers never write the same file) and survive resume.
    """

    def __init__(self, *args, log=print, **kwargs):
        super().__init__(*args, **kwargs)
        self._log = log
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

    def run_trial(self, trial, *args, **kwargs):
        """Keras Tuner's `run_trial` (one execution) with `KeepBestEpoch` for `SaveBestEpoch`."""
        callbacks = self._deepcopy_callbacks(kwargs.pop("callbacks", []))
        self._configure_tensorboard_dir(callbacks, trial)  # TensorFlow backend: per-trial folder + HParams
        for callback in callbacks:
            if isinstance(callback, EpochScalars):
                callback.log_dir = os.path.join(callback.log_dir, str(trial.trial_id))
        describe = getattr(self.hypermodel, "weights_metadata", None)
        callbacks.append(KeepBestEpoch(self.oracle.objective, self._get_checkpoint_fname(trial.trial_id),
                                       describe(trial.hyperparameters) if describe else None))
        total = self.oracle.max_trials or "?"
        label = f"trial {trial.trial_id} ({int(trial.trial_id) + 1}/{total})"
        progress = live_progress(label, kwargs.get("epochs", self.epochs), self.budget_left, self.oracle.objective.name,
                                 enabled=None if self.live_progress is None else self.live_progress)
        if progress is not None:
            callbacks.append(progress)
        cached = getattr(self.hypermodel, "uses_feature_cache", lambda hp: False)(trial.hyperparameters)
        if not cached:
            callbacks.append(EpochTimer(self.full_model_epoch_seconds))
        return [self._build_and_fit_model(trial, *args, callbacks=callbacks, **kwargs)]

    def load_model(self, trial):
        """The trial's model with its best epoch's weights (no optimizer state is read)."""
        model = self._try_build(trial.hyperparameters)
        load_weights(model, self._get_checkpoint_fname(trial.trial_id))
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
            path = Path(self._get_checkpoint_fname(trial_id))
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
        tmp = self.timings_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(mine, indent=1))
        os.replace(tmp, self.timings_path)
        done = len(self.trial_seconds)
        score = "failed" if trial.score is None else f"{self.oracle.objective.name} {trial.score:.4f}"
        values = ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.hyperparameters.values.items())
        left = max(0, (self.oracle.max_trials or done) - done)
        eta = left * self.mean_trial_seconds() + self.after_search_seconds
        self._log(f"[trial {trial.trial_id}] {values} -> {score} ({trial.status.lower()}) in {seconds:.0f} s;"
                  f" {done} trial(s) done, ETA {eta / 60:.1f} min")
        interrupts.check()

    def mean_trial_seconds(self) -> float | None:
        """Average seconds of the trials run so far (this process and earlier ones)."""
        seconds = self.trial_seconds
        return sum(seconds.values()) / len(seconds) if seconds else None


def make_tuner(kind: str, hypermodel, *, objective: str, max_trials: int, directory, seed: int = 0,
               overwrite: bool = False, epochs: int = 3, should_stop=None, distribution_strategy=None,
               log=print, live_progress=None, budget_left=None) -> TimedTuner:
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
        should_stop: callable or None; when it returns True no new trial starts.
        distribution_strategy: a `tf.distribute.Strategy` or None.
        log: callable taking one line of progress. Defaults to print.
        live_progress: bool or None, a live line per trial (None: when stdout is a terminal).
        budget_left: callable returning the seconds left in the fit's budget, or None.
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
    oracle.should_stop = should_stop
    tuner = TimedTuner(oracle=oracle, hypermodel=hypermodel, directory=str(directory), project_name="tuner",
                       overwrite=overwrite, distribution_strategy=distribution_strategy, log=log)
    tuner.live_progress, tuner.budget_left, tuner.epochs = live_progress, budget_left, epochs
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
