"""Keras Tuner oracles that respect a time budget, open the search with chosen trials and never
propose an effective configuration twice."""
from __future__ import annotations

import keras_tuner as kt


class _StopsWhenOutOfTime:
    """Oracle mixin: the first trials run `openings` (partial values over the space's defaults,
    the centre of the space: see `ResNetHyperModel.declare`; not for Hyperband, whose brackets set
    the trial), by default one trial at the defaults, so a budget that holds one trial gets a
    sensible one; after that the oracle proposes, and answers STOPPED instead of a new trial once
    `should_stop()` says so.

    It never proposes values already tried: only active hyperparameters count (a learning rate
    that is inactive at some depth does not make two trials differ), and where the oracle's own
    proposal repeats a trial (the Gaussian process can), a random untried one replaces it; when
    none is left the search stops (the space is exhausted).

    A search whose trials all failed so far gets one more past `max_trials` (the fit needs one
    completed trial; Keras Tuner still ends the search after `max_consecutive_failed_trials`
    failures in a row).
    """

    should_stop = None
    #: list of dicts, values of the first trials over the defaults; None: one trial at the defaults.
    openings = None

    def active_values(self, values: dict) -> dict:
        """`values` restricted to the hyperparameters active under them (Keras Tuner's conditions)."""
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp) and hp.name in values:
                hps.values[hp.name] = values[hp.name]
        return hps.values

    def create_trial(self, tuner_id):
        failed = kt.engine.trial.TrialStatus.FAILED
        if self.max_trials and len(self.trials) >= self.max_trials \
                and all(t.status == failed for t in self.trials.values()):
            self.max_trials = len(self.trials) + 1
        return super().create_trial(tuner_id)

    def populate_space(self, trial_id):
        running, stopped = kt.engine.trial.TrialStatus.RUNNING, kt.engine.trial.TrialStatus.STOPPED
        if self.should_stop is not None and self.should_stop():
            return {"status": stopped, "values": None}
        if isinstance(self, kt.oracles.HyperbandOracle):  # brackets repeat values at more epochs by design
            return super().populate_space(trial_id)
        others = sum(1 for t in self.trials.values() if t.trial_id != trial_id)
        openings = self.openings if self.openings is not None else [{}]
        if others < len(openings) and self.hyperparameters.space:
            values = {hp.name: hp.default for hp in self.hyperparameters.space}
            values.update({k: v for k, v in openings[others].items() if k in values})
            values = self.active_values(values)
            if not self._duplicate(values):
                return {"status": running, "values": values}
        proposal = super().populate_space(trial_id)
        if proposal.get("status") != running or not proposal.get("values"):
            return proposal
        values = self.active_values(proposal["values"])
        if self._duplicate(values):
            values = self._random_values()
            if values is None:
                return {"status": stopped, "values": None}
        return {"status": running, "values": values}


class BayesianOracle(_StopsWhenOutOfTime, kt.oracles.BayesianOptimizationOracle):
    """Gaussian-process Bayesian optimisation that respects the time budget."""


class RandomOracle(_StopsWhenOutOfTime, kt.oracles.RandomSearchOracle):
    """Random search that respects the time budget."""


class HyperbandOracle(_StopsWhenOutOfTime, kt.oracles.HyperbandOracle):
    """Hyperband that respects the time budget."""
