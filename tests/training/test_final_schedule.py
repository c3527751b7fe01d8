"""The final training's learning-rate schedule re-planned from its own epoch times
(`final_schedule.ReplannedCosine`): the plan it picks with a fake clock, and that the rate it sets
each epoch reaches the compiled training step on TensorFlow and on JAX."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from resnet_automl.training import lr_schedule as final_schedule
from resnet_automl.training import timing
from resnet_automl.training.lr_schedule import MARGIN_EPOCHS, ReplannedCosine, epochs_fitting_after


class FakeClock:
    """`time.time` replacement: epochs last what the test says."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now


def _run_epochs(callback, clock, durations, most):
    """Drive `callback` like `fit(epochs=most)` would, epoch `i` lasting `durations(i)` seconds.
    Returns (epochs run, learning rates set)."""
    model = types.SimpleNamespace(optimizer=types.SimpleNamespace(learning_rate=None), stop_training=False)
    callback.set_model(model)
    rates = []
    for epoch in range(most):
        callback.on_epoch_begin(epoch)
        rates.append(model.optimizer.learning_rate)
        clock.now += durations(epoch)
        callback.on_epoch_end(epoch, {})
        if model.stop_training:
            return epoch + 1, rates
    return most, rates


def test_epochs_fitting_after_keeps_a_margin_and_bounds():
    assert epochs_fitting_after(4, 2.0, 100.0, most=200) == 4 + int((100 - MARGIN_EPOCHS * 2) / 2)
    assert epochs_fitting_after(4, 2.0, 100.0, most=30) == 30
    assert epochs_fitting_after(4, 2.0, 1.0, most=30) == 5  # no time: one more epoch, the deadline guard cuts it
    assert epochs_fitting_after(4, 30.0, 100.0, most=30) == 4 + 2  # long epochs: one epoch of margin, not two


def test_the_margin_is_two_short_epochs_or_one_long_one():
    from resnet_automl.planning.schedule import epochs_fitting, margin_seconds

    assert margin_seconds(2.0, 100.0) == 4.0
    assert margin_seconds(30.0, 240.0) == 36.0  # 15% of the time left, between one and two epochs
    assert margin_seconds(30.0, 100.0) == 30.0  # never under one epoch
    assert epochs_fitting(50, 3.0, 100, 100, 60.0) == 18  # short epochs: as before
    assert epochs_fitting(31, 25.0, 100, 100, 240.0, compile_s=26.0) == 7  # was 6 with two epochs of margin


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(final_schedule, "time", fake)
    monkeypatch.setattr(timing, "time", fake)  # the epochs' clock
    return fake


def test_a_pessimistic_plan_grows_to_the_time_left_and_ends_decayed(clock):
    # planned 20 epochs from the trials; epochs really take 1.5 s (the first 20 s: compilation)
    deadline = clock.now + 200.0
    plan = ReplannedCosine(0.01, 20, steps_per_epoch=10, deadline=deadline, most_epochs=400)
    ran, rates = _run_epochs(plan, clock, lambda e: 20.0 if e == 0 else 1.5, most=400)
    assert plan.replans[0][0] == 4  # after 3 timed epochs
    assert ran == plan.epochs > 100 and clock.now <= deadline
    assert deadline - clock.now < (MARGIN_EPOCHS + 1) * 1.5  # the time is used
    assert max(rates) <= 0.01 + 1e-9 and rates[-1] < 0.01 * 0.1  # warmed up, then decayed near its floor
    assert rates[0] < rates[3] and rates[-1] < rates[len(rates) // 2]


def test_an_optimistic_plan_shrinks_and_still_ends_before_the_deadline(clock):
    # planned 76 epochs at 2.9 s; they take 3.8 s, and 4.5 s from epoch 30 on
    deadline = clock.now + 20 + 60 * 3.8
    plan = ReplannedCosine(0.01, 76, steps_per_epoch=10, deadline=deadline, most_epochs=76)
    ran, rates = _run_epochs(plan, clock, lambda e: 20.0 if e == 0 else (3.8 if e < 30 else 4.5), most=76)
    assert ran == plan.epochs < 60 and clock.now <= deadline
    assert len(plan.replans) >= 2  # the slowdown re-planned again
    assert rates[-1] < 0.01 * 0.2  # the schedule reached its end instead of being cut


def test_single_slow_epochs_do_not_shrink_the_plan(clock):
    # measured on a 2-core machine: 2.5 s epochs with single epochs of 5-6 s now and then
    deadline = clock.now + 20 + 100 * 2.5
    plan = ReplannedCosine(0.01, 60, steps_per_epoch=10, deadline=deadline, most_epochs=200)
    spikes = {15: 5.3, 52: 5.2, 53: 6.1, 54: 3.6, 55: 4.0, 63: 5.9}
    ran, _ = _run_epochs(plan, clock, lambda e: 20.0 if e == 0 else spikes.get(e, 2.5), most=200)
    assert clock.now <= deadline and deadline - clock.now < 4 * 2.5 + sum(spikes.values()) - 2.5 * len(spikes)
    assert ran >= 90


def test_without_a_deadline_the_plan_stays(clock):
    plan = ReplannedCosine(0.01, 6, steps_per_epoch=4, deadline=None, most_epochs=50)
    ran, rates = _run_epochs(plan, clock, lambda e: 1.0, most=50)
    assert ran == 6 and plan.replans == [] and rates == [plan.rate(e) for e in range(6)]


#: Trains a tiny model for 2 epochs with the rate set to 0 each epoch: the weights must not move.
#: Compiled with a constant rate of 1e-3 / 10, so a rate that did not reach the compiled step moves them.
RATE_REACHES_THE_STEP = r"""
import numpy as np, keras
from resnet_automl.training.lr_schedule import ReplannedCosine
from resnet_automl.modeling.classifier import compile_classifier

class ZeroRate(ReplannedCosine):
    def rate(self, epoch):
        return 0.0

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
compile_classifier(model, 1e-3, 10, learning_rate_schedule=False)
x, y = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"), np.arange(32) % 3
before = [w.copy() for w in model.get_weights()]
model.fit(x, y, batch_size=8, epochs=5, callbacks=[ZeroRate(1e-3, 2, 4)], verbose=0)
same = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
moved = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
compile_classifier(moved, 1e-3, 10, learning_rate_schedule=False)
start = [w.copy() for w in moved.get_weights()]
moved.fit(x, y, batch_size=8, epochs=1, verbose=0)
print("SAME", same, "MOVES_WITHOUT", not all(np.array_equal(a, b) for a, b in zip(start, moved.get_weights())),
      "EPOCHS", len(model.history.epoch))
"""


@pytest.mark.parametrize("backend", [pytest.param("tensorflow", marks=pytest.mark.slow), "jax"])
def test_the_rate_set_each_epoch_reaches_the_compiled_step(backend):
    if backend == "jax":
        pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", RATE_REACHES_THE_STEP], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SAME True MOVES_WITHOUT True EPOCHS 2" in run.stdout, run.stdout + run.stderr[-2000:]


@pytest.mark.slow
def test_a_replanned_training_resumes_from_its_backup_with_the_plan_it_recorded(tmp_path):
    import keras

    from resnet_automl.modeling.classifier import build_classifier, compile_classifier
    from resnet_automl.training.callbacks import PeriodicBackup

    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3

    class InterruptAtEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    def model_and_callbacks(plan):
        model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=5)
        compile_classifier(model, 1e-3, 20, learning_rate_schedule=False)
        return model, [PeriodicBackup(str(tmp_path / "backup"), min_interval_s=0.0), plan]

    model, callbacks = model_and_callbacks(ReplannedCosine(1e-3, 4, 1, deadline=None, most_epochs=9))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=9, verbose=0, callbacks=[*callbacks, InterruptAtEpoch()])
    recorded = 4  # what run.json holds (`final_stage.fitting_final_epochs`)
    model, callbacks = model_and_callbacks(ReplannedCosine(1e-3, recorded, 1, deadline=None, most_epochs=9))
    history = model.fit(x, y, epochs=9, verbose=0, callbacks=callbacks)
    assert history.epoch == [2, 3]  # resumed after the interrupted epoch, ended at the recorded plan
    assert history.history["learning_rate"] == pytest.approx([callbacks[1].rate(2), callbacks[1].rate(3)])


def test_slow_first_epochs_do_not_end_the_training_early(clock):
    # measured on four, seed 0: 1.6 and 2.0 s right after compilation, then 1.0-1.4 s
    deadline = clock.now + 20 + 250.0
    plan = ReplannedCosine(0.01, 137, steps_per_epoch=11, deadline=deadline, most_epochs=364)
    pattern = [1.0, 1.3, 1.2, 1.0, 1.4]
    ran, _ = _run_epochs(plan, clock, lambda e: {0: 20.0, 1: 1.6, 2: 2.0}.get(e, pattern[e % 5]), most=364)
    assert clock.now <= deadline and deadline - clock.now < 10.0  # a plan made once after three epochs: 65 s
    assert ran > 190


#: Epoch times (s) of a final training measured on fm10-100 seed 1 on an AVX2 host (2026-12-02,
#: resnet20_lean): two speeds, 2.7-3.1 s and 4.5-5.9 s, about half each, in runs of either.
BIMODAL_EPOCHS = [2.9, 3.0, 2.9, 5.3, 3.0, 5.2, 3.1, 3.0, 2.9, 2.8, 5.0, 5.5, 4.7, 5.2, 5.1, 5.0, 5.2, 2.8, 5.3,
                  3.1, 5.0, 4.9, 2.7, 5.1, 5.1, 3.4, 2.7, 5.1, 2.6, 5.2, 2.7, 2.7, 2.7, 5.2, 5.2, 5.1, 2.7, 2.8, 2.8,
                  2.8, 2.8, 2.8, 5.9, 4.5, 2.7, 2.8, 2.8, 2.8, 5.1, 5.4, 3.3]


def test_epochs_of_two_speeds_use_the_time_to_the_deadline(clock):
    # that training: 262 s to its deadline, planned 75, ended at 52 epochs 44 s early (median 3.07 s)
    deadline = clock.now + 20 + 242.0
    plan = ReplannedCosine(0.1, 75, steps_per_epoch=27, deadline=deadline, most_epochs=149)
    ran, rates = _run_epochs(plan, clock, lambda e: 20.0 if e == 0 else BIMODAL_EPOCHS[(e - 1) % len(BIMODAL_EPOCHS)],
                             most=149)
    mean = float(np.mean(BIMODAL_EPOCHS))
    assert clock.now <= deadline and deadline - clock.now < (MARGIN_EPOCHS + 1.5) * mean
    assert ran == plan.epochs and rates[-1] < 0.1 * 0.1  # ended decayed, not cut by the deadline


def test_a_replan_is_recorded_each_time_and_logged_when_it_moves_five_percent(caplog):
    from resnet_automl.pipeline.final_stage import ReplanLog

    class Record(dict):
        def update(self, **values):
            super().update(values)

    record, live = Record(), types.SimpleNamespace(epochs=100)
    replan = ReplanLog(record, 100, live)
    with caplog.at_level(logging.INFO, logger="resnet_automl"):
        for epochs in (101, 103, 104, 106, 100, 99):
            replan(epochs)
            assert record["final_epochs_run"] == epochs == live.epochs  # a resume keeps every plan
    assert [r.getMessage() for r in caplog.records] == ["[final] re-planned from its own epoch times: 106 epochs",
                                                        "[final] re-planned from its own epoch times: 100 epochs"]
