"""Keras Tuner oracles that respect a time budget, open the search with chosen trials and never
propose an effective configuration twice; built on Keras Tuner's public API only."""
from __future__ import annotations

import keras_tuner as kt

#: Random draws tried for an untried configuration before the space counts as exhausted.
MAX_COLLISIONS = 20


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

    Args (keywords, besides the Keras Tuner oracle's own):
        should_stop: callable returning bool, or None (default: never): no new trial starts once it
            returns True.
        openings: list of dicts, values of the first trials over the defaults, or None (default):
            one trial at the defaults.
    """

    def __init__(self, *args, should_stop=None, openings=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.should_stop, self.openings = should_stop, openings

    def active_values(self, values: dict) -> dict:
        """`values` restricted to the hyperparameters active under them (Keras Tuner's conditions)."""
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp) and hp.name in values:
                hps.values[hp.name] = values[hp.name]
        return hps.values

    def tried(self, values: dict, trial_id) -> bool:
        """Whether a trial other than `trial_id` ran the active part of `values` already."""
        mine = self.active_values(values)
        return any(self.active_values(t.hyperparameters.values) == mine
                   for t in self.trials.values() if t.trial_id != trial_id)

    def untried_random_values(self, trial_id) -> dict | None:
        """Random values of the active hyperparameters no other trial ran (seeded by the oracle's
        `seed` and the trial count), or None after `MAX_COLLISIONS` draws that all repeat a trial."""
        for attempt in range(MAX_COLLISIONS + 1):
            seed = (self.seed or 0) + 1000 * len(self.trials) + attempt
            hps = kt.HyperParameters()
            for index, hp in enumerate(self.hyperparameters.space):
                hps.merge([hp])
                if hps.is_active(hp):
                    hps.values[hp.name] = hp.random_sample(seed + 7919 * index)
            if not self.tried(hps.values, trial_id):
                return hps.values
        return None

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
            if not self.tried(values, trial_id):
                return {"status": running, "values": values}
        proposal = super().populate_space(trial_id)
        if proposal.get("status") != running or not proposal.get("values"):
            return proposal
        values = self.active_values(proposal["values"])
        if self.tried(values, trial_id):
            values = self.untried_random_values(trial_id)
            if values is None:
                return {"status": stopped, "values": None}
        return {"status": running, "values": values}


class BayesianOracle(_StopsWhenOutOfTime, kt.oracles.BayesianOptimizationOracle):
    """Gaussian-process Bayesian optimisation that respects the time budget."""


class RandomOracle(_StopsWhenOutOfTime, kt.oracles.RandomSearchOracle):
    """Random search that respects the time budget."""


class HyperbandOracle(_StopsWhenOutOfTime, kt.oracles.HyperbandOracle):
    """Hyperband that respects the time budget."""
