"""What the search varies and what the final training learns from, decided from the options and the
starting weights: the freeze depths, the optimizer, the learning-rate range, the final data.

Each decision is made here once; `FitOptions` only holds what the user asked for.
"""
from __future__ import annotations

from resnet_automl.config.options import FitOptions
from resnet_automl.config.schema import NUM_STAGES
from resnet_automl.config.task import Task

#: Below this many training images a dataset counts as small (backbone ranking, final_data="auto").
SMALL_DATA_IMAGES = 5000
#: Freeze depths searched from pretrained weights: the head alone up to every stage (4 is rarely better than 3 or 5).
PRETRAINED_STAGE_CHOICES = (0, 1, 2, 3, NUM_STAGES)
#: Default log-uniform learning-rate ranges of the search, per optimizer.
LEARNING_RATE_RANGES = {"adam": (1e-4, 1e-2), "sgd": (0.05, 0.2)}


def stage_choices(opts: FitOptions) -> list:
    """The `trainable_stages` values the search tries (sorted list of int): the options' own, else
    every stage from random initialisation and `PRETRAINED_STAGE_CHOICES` from pretrained weights."""
    if opts.trainable_stages is not None:
        return sorted(set(opts.trainable_stages))
    return [NUM_STAGES] if opts.weights is None else list(PRETRAINED_STAGE_CHOICES)


def optimizer(opts: FitOptions) -> str:
    """"adam" or "sgd": the options' `optimizer`, with "auto" decided by the weights (Adam to
    fine-tune pretrained weights, SGD with momentum from random initialisation)."""
    if opts.optimizer != "auto":
        return opts.optimizer
    return "adam" if opts.weights is not None else "sgd"


def learning_rate_range(opts: FitOptions) -> tuple:
    """(low, high) of the log-uniform learning-rate search: the options' own, else the optimizer's default."""
    return tuple(opts.learning_rate_range or LEARNING_RATE_RANGES[optimizer(opts)])


def final_uses_val(opts: FitOptions, train_images: int, task: Task = Task.MULTICLASS) -> bool:
    """Whether the final training also learns from the validation images: the options' `final_data`;
    "auto" does below `SMALL_DATA_IMAGES` training images (int), except for a multi-label `task`,
    whose per-label thresholds are chosen on val."""
    if opts.final_data == "auto":
        return train_images < SMALL_DATA_IMAGES and not task.multilabel
    return opts.final_data == "train+val"
