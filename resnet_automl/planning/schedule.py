"""How long a fit trains: epochs per trial, epochs of the final training, and how the final training
shrinks to the time budget left at its start. Pure functions of counts and seconds (no Keras), so
`FitRun` only gathers the numbers."""
from __future__ import annotations

import dataclasses
import math

from resnet_automl.planning.ranges import SMALL_DATA_IMAGES
from resnet_automl.planning.selection import Plan

#: Epochs of margin a training plan keeps before its deadline (epoch times vary by 10-20% on 2 cores).
MARGIN_EPOCHS = 2
#: ... but at most this share of the time left (at least one epoch), where one epoch is a large part of it.
MARGIN_SHARE = 0.15


def margin_seconds(epoch_s: float, seconds_left: float) -> float:
    """Seconds (float) a plan of `epoch_s`-second epochs keeps free of its `seconds_left`: MARGIN_EPOCHS
    epochs, but no more than `MARGIN_SHARE` of the time left unless that is under one epoch.

    Short epochs keep two (2 s epochs, 100 s left: 4 s). Long ones keep one: two 30 s epochs were
    17% of a 6-minute fit, and with a 2-epoch margin in the final training's plan and in each
    re-plan a quarter of the budget went unused (benchmarks/multilabel.py, 56-64 px mosaics).
    """
    return min(MARGIN_EPOCHS * epoch_s, max(epoch_s, MARGIN_SHARE * seconds_left))


#: Optimiser steps a trial should take at least: fewer leave BatchNorm statistics and weights unsettled.
MIN_TRIAL_STEPS = 120

#: Optimiser steps of the final training from random initialisation, at least: on 600 Fashion-MNIST
#: images a ResNet-20 scored 0.817 after 60 epochs (1,140 steps) and 0.825 after 100 (1,900 steps);
#: with a 6-minute budget on ten Fashion-MNIST classes, final trainings of 1,560-1,730 steps scored
#: 0.790-0.805 on unseen images and trainings of 2,000-2,500 steps 0.82-0.84. Under a
#: time budget the selection only picks a network whose final training reaches it (`selection_plan`).
MIN_FINAL_STEPS_FROM_SCRATCH = 2000

#: The final training's step floor applies within this many times a trial's epochs: from random
#: initialisation (2,000 steps on 850 images: 75 epochs, 12.5 x the 6 trial epochs), and from pretrained weights.
FINAL_EPOCHS_TRIAL_MULTIPLE_FROM_SCRATCH = 20
FINAL_EPOCHS_TRIAL_MULTIPLE_PRETRAINED = 10

#: Optimiser steps of the final training from pretrained weights, at least: BiT's HyperRule
#: (Kolesnikov et al. 2020) fine-tunes datasets under 20,000 images for 500 steps. Twice the trial
#: epochs alone gave 10 images per class (34 images, 2 steps per epoch) 60 steps: fully fine-tuned
#: ResNet-20 ended at 0.77 train accuracy and 0.684 on unseen images (benchmarks/transfer.py, seed 1).
MIN_FINAL_STEPS_PRETRAINED = 500

#: Optimiser steps of the final training from random initialisation, at most, when the time budget
#: leaves room for more than planned (the final training then grows to the time left).
MAX_FINAL_STEPS_FROM_SCRATCH = 4000

#: Final epochs a backbone should get in the time budget, from random initialisation on small data,
#: to be chosen over the next in order (`selection.Plan.preferred_final_epochs`). Ten Fashion-MNIST
#: classes, 6 minutes, 2-core AVX-512 host, unseen images: at 60 per class, seed 1, the
#: full ResNet-20 with 133 and 158 final epochs scored 0.792 and 0.798, below the small CNN
#: (0.800-0.804), `resnet20_lean` with 250 epochs 0.809; at 100 per class, seed 0, the full net with
#: 84 epochs 0.836, lean with 149 epochs 0.850. Rows where the full net got 210-274 epochs (30 per
#: class, four classes, confusable seed 1) beat the CNN by 1.2-4.8 points. He et al. trained the
#: CIFAR ResNets for about 164 epochs; 160 here let the 158-epoch run through, hence 200.
PREFERRED_FINAL_EPOCHS_FROM_SCRATCH = 200

#: Tuner trials when the budget names none and the search has more than the learning rate to tune.
DEFAULT_TRIALS = 6

#: Tuner trials when only the learning rate is searched and the weights are pretrained (one frozen
#: depth, `trainable_stages` fixed).
DEFAULT_TRIALS_LEARNING_RATE_ONLY = 3

#: Tuner trials from random initialisation, where only the learning rate is searched: one, at the
#: range's centre (SGD's 0.1, the CIFAR ResNets' rate), whose measured epochs plan the final
#: training and whose model stands in if the final training fails. Trials of about 100-130
#: optimiser steps from scratch rank learning rates by noise: on ten Fashion-MNIST classes at 30
#: images per class they scored 0.11-0.20 on val (chance: 0.10), and the three-trial search chose
#: between 0.07 and 0.15 by it. One trial against three (benchmarks/small_data_quality.py, fm10-30,
#: fm10-60 and fm10-100, seeds 0 and 1, 6 minutes, 2-core CPU): mean test accuracy 0.8174 against
#: 0.8171, each row within a point (the noise), with a 22-25 s search instead of 28-65 s.
DEFAULT_TRIALS_FROM_SCRATCH = 1


def default_trials(depth_choices: int, backbone_choices: int = 1, pretrained: bool = True) -> int:
    """Tuner trials when the budget names none: DEFAULT_TRIALS; when the learning rate is all there
    is to search (one frozen depth, `depth_choices` int, and one backbone, `backbone_choices` int,
    default 1), DEFAULT_TRIALS_LEARNING_RATE_ONLY with `pretrained` weights (default True) and
    DEFAULT_TRIALS_FROM_SCRATCH without."""
    if depth_choices > 1 or backbone_choices > 1:
        return DEFAULT_TRIALS
    return DEFAULT_TRIALS_LEARNING_RATE_ONLY if pretrained else DEFAULT_TRIALS_FROM_SCRATCH


def default_epochs(steps_per_epoch: int) -> int:
    """Epochs per trial: enough for MIN_TRIAL_STEPS optimiser steps, between 3 and 15.

    Example: 19 steps per epoch (600 images, batch 32) -> 7 epochs.
    """
    return int(min(15, max(3, math.ceil(MIN_TRIAL_STEPS / steps_per_epoch))))


def default_final_epochs(trial_epochs: int, final_steps_per_epoch: int, pretrained: bool,
                         epochs_chosen: bool = False) -> int:
    """Epochs of the final training: twice a trial's; when the trial epochs were not chosen by the
    user (`epochs_chosen`, default False), at least MIN_FINAL_STEPS_FROM_SCRATCH optimiser steps
    from random initialisation or MIN_FINAL_STEPS_PRETRAINED from pretrained weights, within
    FINAL_EPOCHS_TRIAL_MULTIPLE_FROM_SCRATCH (or _PRETRAINED) times a trial's epochs. The time
    budget may shorten it when it starts (`epochs_fitting`).

    Example: 15 trial epochs, 2 steps per final epoch, pretrained -> 150 epochs (300 steps).
    """
    epochs = 2 * trial_epochs
    if not epochs_chosen:
        if pretrained:
            floor, multiple = MIN_FINAL_STEPS_PRETRAINED, FINAL_EPOCHS_TRIAL_MULTIPLE_PRETRAINED
        else:
            floor, multiple = MIN_FINAL_STEPS_FROM_SCRATCH, FINAL_EPOCHS_TRIAL_MULTIPLE_FROM_SCRATCH
        epochs = max(epochs, min(multiple * trial_epochs, math.ceil(floor / final_steps_per_epoch)))
    return int(epochs)


def selection_plan(plan: Plan, *, time_budget: bool, final_epochs_chosen: bool, pretrained: bool = False) -> Plan:
    """The plan a candidate backbone must fit in the time budget.

    The final training shrinks at its start to the time left (`epochs_fitting`). From random
    initialisation (`pretrained` False, the default) a candidate fits when its trials and the planned
    final training (MIN_FINAL_STEPS_FROM_SCRATCH steps) do: a network that gets fewer steps loses
    more than a cheaper one (`resnet20_lean`) does, on a slow machine; on small
    data (< SMALL_DATA_IMAGES training images) it is chosen outright only when the budget also
    holds PREFERRED_FINAL_EPOCHS_FROM_SCRATCH final epochs, else the next in order is probed first.
    From pretrained weights the step floor is a goal, not a requirement: a candidate fits when its
    trials and a final training of 2 x trial epochs do. Without a time budget, or with final
    epochs chosen, `plan` as it is.
    """
    if not time_budget or final_epochs_chosen:
        return plan
    if not pretrained:
        if plan.train_images >= SMALL_DATA_IMAGES:
            return plan
        return dataclasses.replace(plan, preferred_final_epochs=PREFERRED_FINAL_EPOCHS_FROM_SCRATCH)
    return dataclasses.replace(plan, final_epochs=min(plan.final_epochs, 2 * plan.epochs))


def median_epoch_seconds(epoch_seconds) -> float | None:
    """Median of measured epoch durations (the first epoch's compilation is an outlier it ignores);
    None when nothing was measured."""
    seconds = sorted(epoch_seconds or [])
    return seconds[len(seconds) // 2] if seconds else None


def final_epoch_seconds(trial_epoch_s: float, train_images: int, final_images: int, val_images: int = 0) -> float:
    """Seconds of one final-training epoch: a trial epoch's measured training seconds scaled to the
    final training's images (train, or train + val), plus validating `val_images` (int, default 0:
    a final training on train + val validates nothing) at three times the training speed."""
    return trial_epoch_s * (final_images + val_images / 3.0) / max(1, train_images)


def final_training_seconds(trial_epoch_s: float, train_images: int, final_images: int, final_epochs: int,
                           val_images: int = 0) -> float:
    """Seconds of the final training: `final_epochs` plus one epoch for compilation."""
    return final_epoch_seconds(trial_epoch_s, train_images, final_images, val_images) * (final_epochs + 1)


def epochs_fitting(planned: int, trial_epoch_s: float, train_images: int, final_images: int,
                   seconds_left: float, grow_to: int | None = None, compile_s: float = 0.0,
                   val_images: int = 0) -> int:
    """The final epochs that `seconds_left` holds after `compile_s` (float seconds of building and
    compiling the training step, default 0) with `margin_seconds` of margin (two epochs, one
    where epochs are long): fewer than `planned` (at
    least 2) when time is short, so the learning-rate schedule runs to its end instead of being
    cut; more, up to `grow_to` (int or None: never more than planned, the default), when time is
    left over. `val_images` as in `final_epoch_seconds`.

    Example: 50 planned, 3 s per epoch, 60 s left -> 18 epochs; 10 planned, 600 s left, grow_to 100 -> 100.
    """
    per_epoch = final_epoch_seconds(trial_epoch_s, train_images, final_images, val_images)
    fitting = int((seconds_left - compile_s - margin_seconds(per_epoch, seconds_left - compile_s)) / per_epoch)
    if fitting < planned:
        return max(2, fitting)
    return max(planned, min(fitting, grow_to)) if grow_to else planned


def final_epochs_ceiling(final_steps_per_epoch: int) -> int:
    """Most final epochs from random initialisation when the time budget has room:
    MAX_FINAL_STEPS_FROM_SCRATCH optimiser steps."""
    return int(math.ceil(MAX_FINAL_STEPS_FROM_SCRATCH / max(1, final_steps_per_epoch)))
