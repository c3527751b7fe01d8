"""Choosing the best trial: the objective first, the validation loss on ties."""
from __future__ import annotations

from types import SimpleNamespace

import keras_tuner as kt

from resnet_automl.search.tuner import best_trial


def _trial(trial_id, score, val_losses, best_step, status=kt.engine.trial.TrialStatus.COMPLETED):
    trial = kt.engine.trial.Trial(kt.HyperParameters(), trial_id=trial_id, status=status)
    trial.score, trial.best_step = score, best_step
    trial.metrics.register("val_loss", direction="min")
    for step, value in enumerate(val_losses):
        trial.metrics.update("val_loss", value, step=step)
    return trial


def _oracle(*trials):
    return SimpleNamespace(trials={t.trial_id: t for t in trials}, objective=kt.Objective("val_accuracy", "max"))


def test_ties_on_accuracy_go_to_the_lower_loss_at_the_best_epoch():
    first = _trial("0", 0.9833, [0.30, 0.20], best_step=1)
    second = _trial("1", 0.9833, [0.50, 0.09, 0.40], best_step=1)  # lower loss where its accuracy peaked
    worse = _trial("2", 0.95, [0.01], best_step=0)  # lowest loss but lower accuracy: never preferred
    assert best_trial(_oracle(first, second, worse)).trial_id == "1"


def test_a_clear_winner_and_trials_that_did_not_complete():
    winner = _trial("0", 0.99, [0.9], best_step=0)
    failed = _trial("1", None, [], best_step=0, status=kt.engine.trial.TrialStatus.FAILED)
    assert best_trial(_oracle(winner, failed, _trial("2", 0.5, [0.1], best_step=0))).trial_id == "0"
    assert best_trial(_oracle(failed)) is None
