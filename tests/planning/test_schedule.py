"""Epoch counts and the final training's fit to the time budget (pure arithmetic, no training)."""
from __future__ import annotations

import pytest

from resnet_automl.planning.ranges import SMALL_DATA_IMAGES
from resnet_automl.planning.schedule import (
    MAX_FINAL_STEPS_FROM_SCRATCH,
    MIN_FINAL_STEPS_FROM_SCRATCH,
    MIN_FINAL_STEPS_PRETRAINED,
    PREFERRED_FINAL_EPOCHS_FROM_SCRATCH,
    default_epochs,
    default_final_epochs,
    epochs_fitting,
    final_epoch_seconds,
    final_epochs_ceiling,
    final_training_seconds,
    median_epoch_seconds,
    selection_plan,
)
from resnet_automl.planning.selection import Plan


@pytest.mark.parametrize("steps, epochs", [(1, 15), (19, 7), (40, 3), (1000, 3)])
def test_trial_epochs_reach_the_minimum_steps_within_3_to_15(steps, epochs):
    assert default_epochs(steps) == epochs


def test_final_epochs_from_scratch_reach_the_step_floor_within_twenty_trials():
    # 850 images, batch 32: 27 steps per epoch; 2,000 steps need 75 epochs, within 20 x 6 = 120
    assert default_final_epochs(6, 27, pretrained=False) == 75
    # 400 images: 13 steps per epoch; 2,000 steps need 154 epochs, more than 20 x 7 = 140
    assert default_final_epochs(7, 13, pretrained=False) == 140
    assert default_final_epochs(7, 300, pretrained=False) == max(14, -(-MIN_FINAL_STEPS_FROM_SCRATCH // 300))
    assert default_final_epochs(7, 19, pretrained=False, epochs_chosen=True) == 14


def test_pretrained_final_epochs_reach_their_own_step_floor_within_ten_trials():
    # 10 images per class: 34 images, batch 32, 2 steps per epoch; 500 steps need 250 epochs, within 150
    assert default_final_epochs(15, 2, pretrained=True) == 150
    assert default_final_epochs(7, 19, pretrained=True) == -(-MIN_FINAL_STEPS_PRETRAINED // 19)  # 27
    assert default_final_epochs(3, 300, pretrained=True) == 6  # large sets: twice the trial epochs
    assert default_final_epochs(15, 2, pretrained=True, epochs_chosen=True) == 30


def test_selection_counts_twice_the_trial_epochs_only_for_pretrained_weights_under_a_time_budget():
    plan = Plan(trials=6, epochs=7, final_epochs=70, train_images=420, val_images=90, trainable_stages=5,
                batch_size=32)
    assert selection_plan(plan, time_budget=True, final_epochs_chosen=False, pretrained=True).final_epochs == 14
    assert selection_plan(plan, time_budget=False, final_epochs_chosen=False, pretrained=True).final_epochs == 70
    assert selection_plan(plan, time_budget=True, final_epochs_chosen=True, pretrained=True).final_epochs == 70
    # from random initialisation a candidate must hold the whole planned final training (the step floor)
    # and, on small data, should hold PREFERRED_FINAL_EPOCHS_FROM_SCRATCH final epochs to be chosen outright
    scratch = selection_plan(plan, time_budget=True, final_epochs_chosen=False)
    assert scratch.final_epochs == 70 and scratch.preferred_final_epochs == PREFERRED_FINAL_EPOCHS_FROM_SCRATCH
    large = Plan(**{**plan.__dict__, "train_images": SMALL_DATA_IMAGES})
    assert selection_plan(large, time_budget=True, final_epochs_chosen=False).preferred_final_epochs is None
    assert selection_plan(plan, time_budget=False, final_epochs_chosen=False).preferred_final_epochs is None
    assert selection_plan(plan, time_budget=True, final_epochs_chosen=True).preferred_final_epochs is None
    assert selection_plan(plan, time_budget=True, final_epochs_chosen=False,
                          pretrained=True).preferred_final_epochs is None


def test_median_epoch_ignores_the_compiling_first_epoch():
    assert median_epoch_seconds([30.0, 2.0, 2.2, 2.1]) == 2.2
    assert median_epoch_seconds([]) is None
    assert median_epoch_seconds(None) is None


def test_final_seconds_scale_with_the_final_images_and_add_a_compile_epoch():
    assert final_training_seconds(2.0, 400, 500, 9) == pytest.approx(2.0 * 1.25 * 10)


def test_final_epochs_shrink_to_the_time_left_but_not_below_two():
    assert epochs_fitting(50, 3.0, 100, 100, 60.0) == 18
    assert epochs_fitting(10, 3.0, 100, 100, 600.0) == 10
    assert epochs_fitting(50, 3.0, 100, 200, 60.0) == 8  # 6 s per epoch on train + val
    assert epochs_fitting(50, 3.0, 100, 100, 1.0) == 2


def test_final_epochs_grow_into_time_left_over_only_up_to_the_ceiling():
    assert epochs_fitting(10, 3.0, 100, 100, 600.0, grow_to=100) == 100
    assert epochs_fitting(10, 3.0, 100, 100, 120.0, grow_to=100) == 38
    assert epochs_fitting(50, 3.0, 100, 100, 60.0, grow_to=100) == 18  # short of time: shrinks as before
    assert final_epochs_ceiling(11) == -(-MAX_FINAL_STEPS_FROM_SCRATCH // 11)


def test_the_compile_seconds_come_off_the_time_the_final_epochs_fit_in():
    # 120 s left, 3 s per epoch: 38 epochs; 15 s of compiling first leave room for 33
    assert epochs_fitting(10, 3.0, 100, 100, 120.0, grow_to=100, compile_s=15.0) == 33
    assert epochs_fitting(50, 3.0, 100, 100, 60.0, compile_s=15.0) == 13


def test_the_deadline_judges_the_next_epoch_by_the_epochs_after_the_compiling_first(monkeypatch):
    from resnet_automl.training import callbacks

    class Model:
        stop_training = False

    now = [1000.0]
    monkeypatch.setattr(callbacks.time, "time", lambda: now[0])
    deadline = callbacks.DeadlineCallback(deadline=1045.0)
    deadline.set_model(Model())
    durations = [20.0] + [2.0] * 30  # the first epoch compiles
    for seconds in durations:
        deadline.on_epoch_begin(0)
        now[0] += seconds
        deadline.on_epoch_end(0)
        if deadline.model.stop_training:
            break
    assert deadline.stopped_for_time and deadline.next_epoch_seconds() == 2.0
    assert now[0] == 1044.0  # the slowest epoch (20 s) as the next one's length would have stopped at 1026


def test_a_final_epoch_that_validates_adds_the_val_images_at_three_times_the_training_speed():
    assert final_epoch_seconds(2.0, 300, 300, val_images=90) == pytest.approx(2.0 * (300 + 30) / 300)
    assert epochs_fitting(50, 3.0, 90, 90, 66.0, val_images=90) == 14  # 4 s per epoch: (66 - 8) / 4


def test_the_epoch_timer_leaves_validation_and_end_of_epoch_work_out():
    import time

    import keras
    import numpy as np

    from resnet_automl.training.callbacks import EpochTimer

    class SlowEndOfEpoch(keras.callbacks.Callback):  # stands for saving the best epoch
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.5)

    hooks = {"on_batch_end", "on_train_batch_end", "on_train_batch_begin", "on_batch_begin"}
    assert not hooks & set(vars(EpochTimer)), "a batch hook turns Keras' asynchronous dispatch off"

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.zeros((64, 4), "float32"), np.zeros(64, "int32")
    durations = []
    started = time.time()
    model.fit(x, y, validation_data=(x, y), epochs=4, batch_size=16, verbose=0,
              callbacks=[SlowEndOfEpoch(), EpochTimer(durations)])
    assert len(durations) == 3 and all(d > 0 for d in durations)  # the first epoch (compiling) left out
    assert sum(durations) < time.time() - started - 2.0  # the 4 x 0.5 s at the epochs' ends are not in them
    first = []
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[EpochTimer(durations, first)])
    assert len(durations) == 3 and len(first) == 1  # one epoch: it compiled, so it goes to the first epochs


def test_one_epoch_trials_stand_in_for_the_epoch_time_less_the_first_step():
    from types import SimpleNamespace

    from resnet_automl.pipeline.search_stage import SearchClock

    clock = SearchClock.__new__(SearchClock)
    clock.choice = SimpleNamespace(first_step_s=13.0)
    clock.tuner = SimpleNamespace(full_model_epoch_seconds=[], full_model_first_epoch_seconds=[41.8])
    assert clock.measured_epoch_seconds() == pytest.approx(28.8)
    clock.tuner.full_model_first_epoch_seconds = [14.0]  # mostly compilation: nothing to read from it
    assert clock.measured_epoch_seconds() is None
    clock.tuner.full_model_epoch_seconds = [20.0, 24.0, 22.0]  # later epochs measured: they win
    assert clock.measured_epoch_seconds() == 22.0


def test_a_search_of_the_learning_rate_alone_gets_fewer_trials_and_from_scratch_one():
    from resnet_automl.planning.schedule import (
        DEFAULT_TRIALS,
        DEFAULT_TRIALS_FROM_SCRATCH,
        DEFAULT_TRIALS_LEARNING_RATE_ONLY,
        default_trials,
    )

    assert default_trials(1) == DEFAULT_TRIALS_LEARNING_RATE_ONLY == 3
    assert default_trials(5) == DEFAULT_TRIALS == 6
    assert default_trials(1, backbone_choices=2) == DEFAULT_TRIALS  # backbone x learning rate
    assert default_trials(1, pretrained=False) == DEFAULT_TRIALS_FROM_SCRATCH == 1
    assert default_trials(1, backbone_choices=2, pretrained=False) == DEFAULT_TRIALS


def test_the_backbones_a_fit_names_are_counted_in_every_spelling():
    from resnet_automl.config.options import FitOptions

    assert FitOptions().backbones_named() == 1
    assert FitOptions(backbone="resnet18, resnet34").backbones_named() == 2
    assert FitOptions(backbone=["resnet18", "resnet34", "resnet50"]).backbones_named() == 3
