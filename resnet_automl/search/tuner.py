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
from resnet_automl.errors import ConfigError, RunStateError
from resnet_automl.runtime import interrupts
from resnet_automl.runtime.files import read_json_object, write_json_atomic
from resnet_automl.runtime.progress import live_progress
from resnet_automl.search.contract import SearchHooks, SearchHyperModel
from resnet_automl.search.oracles import BayesianOracle, HyperbandOracle, RandomOracle
from resnet_automl.search.phases import TrialPhases
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


class TimedTuner(kt.Tuner):
    """A Keras Tuner `Tuner` that records seconds per trial and logs one line per trial.

    It extends Keras Tuner through its documented hooks: `run_trial` (build with the hypermodel,
    fit with it, as Keras Tuner's own documentation shows), `on_trial_begin`/`on_trial_end`, and
    `load_model`. A trial's best epoch is kept in memory and written once, without optimizer state
    (`callbacks.KeepBestEpoch`), instead of Keras Tuner's checkpoint at every better epoch.
    Timings persist in `<project>/trial_seconds-<tuner id>.json` (one file per process, so
    distributed workers never write the same file) and survive resume: per trial, its seconds, the
    seconds of each phase (`search.phases`), its effective hyperparameters and, for a trial whose
    effective configuration an earlier trial already scored, that trial's id (`reused_from`: its
    score is reused, nothing trains).

    Args (keywords, besides `keras_tuner.Tuner`'s own):
        hypermodel: a `SearchHyperModel` (`ResNetHyperModel`).
        hooks: `SearchHooks` (time budget, live line, ETA), or None (default): none.
        epochs: int, epochs per trial (shown on the live line). Defaults to 1.
    """

    def __init__(self, *, hypermodel: SearchHyperModel, hooks: SearchHooks | None = None, epochs: int = 1,
                 **kwargs):
        if not isinstance(hypermodel, SearchHyperModel):
            raise TypeError(f"TimedTuner needs a hypermodel with the SearchHyperModel members; got {hypermodel!r}")
        super().__init__(hypermodel=hypermodel, **kwargs)
        self._started = {}
        self.hooks = hooks or SearchHooks()
        self.epochs = epochs
        #: Seconds of each epoch of the trials that trained the whole model, in this process.
        self.full_model_epoch_seconds = []
        #: Seconds of the first (compiling) epoch of each of those trials.
        self.full_model_first_epoch_seconds = []
        self.timings_path = Path(self.project_dir) / f"trial_seconds-{self.tuner_id}.json"
        self._phases = TrialPhases()
        self._reused = {}  # trial id -> id of the trial whose score it reused

    @property
    def trial_records(self) -> dict:
        """{trial id: {"seconds", "phases", "effective", "reused_from"}} over every process that ran
        trials in this project (a record of an older version holds its seconds alone)."""
        merged = {}
        for path in sorted(Path(self.project_dir).glob("trial_seconds-*.json")):
            try:
                records = json.loads(path.read_text())
            except (OSError, ValueError):  # a file being replaced right now
                continue
            merged.update({k: v if isinstance(v, dict) else {"seconds": v} for k, v in records.items()})
        return merged

    @property
    def trial_seconds(self) -> dict:
        """{trial id: seconds} over every process that ran trials in this project."""
        return {k: v.get("seconds") for k, v in self.trial_records.items()}

    def effective_values(self, hp) -> dict:
        """The hyperparameters that change what a trial computes (the hypermodel's `effective_values`)."""
        return self.hypermodel.effective_values(hp)

    @property
    def sees_all_trials(self) -> bool:
        """False in a distributed worker, whose oracle is a client that knows only its own trials."""
        return isinstance(self.oracle, kt.Oracle)

    def scored_twin(self, trial):
        """An earlier completed trial with the same effective hyperparameters as `trial`, or None
        (in a distributed worker, which sees only its own trials: None)."""
        if not self.sees_all_trials:
            return None
        mine = self.effective_values(trial.hyperparameters)
        for other in sorted(self.oracle.trials.values(), key=lambda t: int(t.trial_id)):
            if other.trial_id != trial.trial_id and other.score is not None \
                    and other.status == kt.engine.trial.TrialStatus.COMPLETED \
                    and self.effective_values(other.hyperparameters) == mine:
                return other
        return None

    def _beats_best_so_far(self, value) -> bool:
        """False when a finished trial already scores strictly better than `value` (the trial's
        checkpoint would be pruned at once); True otherwise, and in a distributed worker."""
        if not self.sees_all_trials:
            return True
        best = best_trial(self.oracle)
        return best is None or not self.oracle.objective.better_than(best.score, value)

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
        callbacks.append(KeepBestEpoch(self.oracle.objective, self.checkpoint_path(trial.trial_id),
                                       self.hypermodel.weights_metadata(trial.hyperparameters),
                                       write_if=self._beats_best_so_far, timer=self._phases))
        total = self.oracle.max_trials or "?"
        label = f"trial {trial.trial_id} ({int(trial.trial_id) + 1}/{total})"
        progress = live_progress(label, epochs, self.hooks.budget_left, self.oracle.objective.name,
                                 enabled=self.hooks.live_progress)
        if progress is not None:
            callbacks.append(progress)
        if not self.hypermodel.uses_feature_cache(trial.hyperparameters):
            callbacks.append(EpochTimer(self.full_model_epoch_seconds, self.full_model_first_epoch_seconds))
        return callbacks

    def _build(self, hp):
        """The hypermodel's model for `hp`, on a fresh Keras session (as Keras Tuner builds each trial)
        unless the hypermodel reuses its built models within the search (`reusing_models`)."""
        if not self.hypermodel.reuses_models:
            keras.backend.clear_session()
        if self.distribution_strategy is None:
            return self.hypermodel.build(hp)
        with self.distribution_strategy.scope():
            return self.hypermodel.build(hp)

    def run_trial(self, trial, *args, **kwargs):
        """Build the trial's model with the hypermodel and fit it with the hypermodel (one execution).

        A trial whose effective hyperparameters an earlier trial already scored (`scored_twin`)
        reuses that score: nothing is built or trained.
        """
        self._phases = self.hypermodel.phases = TrialPhases()
        twin = self.scored_twin(trial)
        if twin is not None:
            self._reused[trial.trial_id] = twin.trial_id
            logger.info(f"[trial {trial.trial_id}] same effective hyperparameters as trial {twin.trial_id}: "
                        "its score is reused")
            return _metrics_at_best_step(twin)
        callbacks = self._trial_callbacks(trial, kwargs.pop("callbacks", []), kwargs.get("epochs", self.epochs))
        hp = trial.hyperparameters
        return self.hypermodel.fit(hp, self._build(hp), *args, callbacks=callbacks, **kwargs)

    def search(self, *args, **kwargs):
        """Keras Tuner's search; a stop after too many failed trials in a row raises `SearchFailedError`."""
        try:
            with self.hypermodel.reusing_models():
                return super().search(*args, **kwargs)
        except RuntimeError as exc:
            failures, last = consecutive_failures(self.oracle)
            if failures and failures >= self.oracle.max_consecutive_failed_trials:
                raise SearchFailedError(failures, last) from exc
            raise

    def load_model(self, trial):
        """The trial's model with its best epoch's weights (no optimizer state is read): its
        checkpoint, the probe head of a probe trial, or the checkpoint of the trial whose score it reused."""
        source = self.trial_records.get(trial.trial_id, {}).get("reused_from") or trial.trial_id
        model = self._build(trial.hyperparameters)
        if not self.hypermodel.restore_probe(model, self.checkpoint_path(source)):
            load_weights(model, self.checkpoint_path(source))
        return model

    def prune_checkpoints(self) -> int:
        """Delete the checkpoints of finished trials other than the best; return how many.

        Runs where the oracle's trials are known (one process, or the chief when the search ends);
        a distributed worker prunes nothing, since it sees only its own trials.
        """
        if not self.sees_all_trials:
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
        logged = time.perf_counter()
        super().on_trial_end(trial)
        self.prune_checkpoints()
        phases = self._phases
        phases.add("log", time.perf_counter() - logged)
        seconds = time.time() - self._started.pop(trial.trial_id, time.time())
        record = {"seconds": round(seconds, 2), "phases": phases.rounded(),
                  "effective": self.effective_values(trial.hyperparameters)}
        record["phases"]["other"] = round(max(0.0, seconds - sum(phases.seconds.values())), 2)
        if trial.trial_id in self._reused:
            record["reused_from"] = self._reused[trial.trial_id]
        mine = json.loads(self.timings_path.read_text()) if self.timings_path.exists() else {}
        mine[trial.trial_id] = record
        write_json_atomic(self.timings_path, mine)
        done = len(self.trial_seconds)
        score = "failed" if trial.score is None else f"{self.oracle.objective.name} {trial.score:.4f}"
        values = ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.hyperparameters.values.items())
        left = max(0, (self.oracle.max_trials or done) - done)
        eta = left * self.mean_trial_seconds() + self.hooks.after_search_seconds
        logger.info(f"[trial {trial.trial_id}] {values} -> {score} ({trial.status.lower()}) in {seconds:.0f} s;"
                  f" {done} trial(s) done, ETA {eta / 60:.1f} min")
        interrupts.check()

    def mean_trial_seconds(self) -> float | None:
        """Average seconds of the trials run so far (this process and earlier ones)."""
        seconds = self.trial_seconds
        return sum(seconds.values()) / len(seconds) if seconds else None


def make_tuner(kind: str, hypermodel: SearchHyperModel, *, objective: str, max_trials: int, directory, seed: int = 0,
               epochs: int = 3, hooks: SearchHooks | None = None, **tuner_options) -> TimedTuner:
    """Build the tuner.

    Args:
        kind: "bayesian" (default of `fit`: a Gaussian process is sample-efficient on a 2-3
            dimensional space where each trial is expensive), "hyperband" or "random".
        hypermodel: the `ResNetHyperModel`.
        objective: str, metric to maximise ("val_accuracy" or "val_balanced_accuracy").
        max_trials: int, trials in total (for hyperband: the cap on trials).
        directory: folder holding the Keras Tuner project "tuner" (resume reads it).
        seed: int, oracle seed. Defaults to 0.
        epochs: int, epochs per trial (hyperband's max_epochs). Defaults to 3.
        hooks: `SearchHooks` tying the search to a time budget and the console (its `should_stop`
            goes to the oracle), or None (default): none.
        **tuner_options: further keyword arguments of `keras_tuner.Tuner` (`distribution_strategy`,
            `overwrite`: start again instead of resuming; by default it resumes).

    When depth 0 is the linear probe (`ResNetHyperModel.probe_at_depth_zero`) and other depths are
    searched, the probe opens the search (seconds), then the centre of the space.
    """
    if kind not in TUNERS:
        raise ConfigError(f"The `tuner` argument must be one of {TUNERS}. Received: tuner={kind!r}")
    hooks = hooks or SearchHooks()
    choices = hypermodel.stage_choices
    # a frozen trial is a linear probe (seconds): it opens the search, then the centre of the space
    openings = [{"trainable_stages": 0}, {}] if 0 in choices and len(choices) > 1 and hypermodel.probe_at_depth_zero \
        else None
    common = {"objective": kt.Objective(objective, direction="max"), "seed": seed,
              "should_stop": hooks.should_stop, "openings": openings}
    if kind == "bayesian":
        oracle = BayesianOracle(max_trials=max_trials, num_initial_points=min(max_trials, 3), **common)
    elif kind == "random":
        oracle = RandomOracle(max_trials=max_trials, **common)
    else:
        oracle = HyperbandOracle(max_epochs=max(epochs, 2), factor=3, hyperband_iterations=1, **common)
    project = Path(directory) / "tuner"
    if not tuner_options.get("overwrite"):
        check_project(project)
    try:
        return TimedTuner(oracle=oracle, hypermodel=hypermodel, hooks=hooks, epochs=epochs, directory=str(directory),
                          project_name="tuner", **tuner_options)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        if not project.exists():
            raise
        raise RunStateError(f"The Keras Tuner project {str(project)!r} could not be read back "
                            f"({type(exc).__name__}: {exc}). {_PROJECT_FIX.format(project=project)}") from None


_PROJECT_FIX = "Rerun with --overwrite to search again (exported model versions are kept), or delete {project}."


def check_project(project: Path) -> None:
    """`RunStateError` naming the first damaged file Keras Tuner would read back from `project`
    (its oracle.json and each trial's trial.json: truncated, empty, or not an object)."""
    for path in [project / "oracle.json", *sorted(project.glob("trial_*/trial.json"))]:
        if path.exists():
            read_json_object(path, what="the Keras Tuner file", fix=_PROJECT_FIX.format(project=project))


def trials_table(tuner: TimedTuner) -> list:
    """One dict per trial: id, hyperparameters, effective (the hyperparameters that change what it
    computes), score, seconds, phases ({phase: seconds}, `search.phases.PHASES` plus "other"),
    reused_from (the trial whose score it reused, or None), status, message (failures)."""
    rows = []
    records = tuner.trial_records
    for trial_id, trial in sorted(tuner.oracle.trials.items(), key=lambda item: int(item[0])):
        message = (trial.message or "").strip().splitlines()
        record = records.get(trial_id, {})
        rows.append({
            "trial_id": trial_id,
            "hyperparameters": dict(trial.hyperparameters.values),
            "effective": record.get("effective", tuner.effective_values(trial.hyperparameters)),
            "score": None if trial.score is None else float(trial.score),
            "seconds": record.get("seconds"),
            "phases": record.get("phases", {}),
            "reused_from": record.get("reused_from"),
            "status": trial.status,
            "message": message[-1] if message else "",
        })
    return rows


def _metrics_at_best_step(trial) -> dict:
    """{metric: value} of a finished trial at its best step (its objective: its score)."""
    metrics = {}
    for name in trial.metrics.metrics:
        history = trial.metrics.get_history(name)
        at_best = [obs.mean() for obs in history if obs.step == trial.best_step] or [obs.mean() for obs in history]
        if at_best:
            metrics[name] = float(at_best[-1])
    return metrics


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
