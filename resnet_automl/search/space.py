"""What a search varies (`SearchSpace`) and how every one of its trials trains (`TrialSettings`)."""
from __future__ import annotations

from dataclasses import dataclass

from resnet_automl.config.task import Task
from resnet_automl.planning.ranges import LEARNING_RATE_RANGES

#: Default learning-rate range of the search (Adam, log-uniform): `ranges.LEARNING_RATE_RANGES`' own.
LEARNING_RATE_RANGE = LEARNING_RATE_RANGES["adam"]


@dataclass(frozen=True)
class TrialSettings:
    """How every trial of a search trains (the hyperparameters aside).

    Attributes:
        num_classes: int, classes of the head.
        image_size: int, input side in pixels.
        epochs: int, epochs per trial (used for the learning-rate schedule).
        steps_per_epoch: int, batches per epoch (used for the learning-rate schedule).
        class_weight: dict or None, `{label: weight}` passed to `fit` (imbalanced data). Defaults to None.
        bn_momentum: float, BatchNorm momentum. Defaults to 0.9.
        patience: int, epochs without improvement before a trial stops early. Defaults to 3.
        objective: str, metric early stopping watches. Defaults to "val_accuracy".
        batch_size: int or None, batch size of the datasets; an out-of-memory error retries the
            trial once at half of it. Defaults to None (the datasets' own).
        seed: int, shuffle seed of the cached datasets (the image datasets' seed). Defaults to 0.
        dropout: float, dropout before the head. Defaults to 0.2.
        class_names: list of str or None, recorded in the trials' checkpoints. Defaults to None.
        optimizer: "adam" (default) or "sgd", see `modeling.classifier.compile_classifier`.
        augment: bool, trials that train the whole model see the final training's augmentation
            (cached-feature trials cannot) and, like the final training, set their learning rate once
            per epoch (`lr_schedule.ReplannedCosine` over `epochs`, no deadline), so that every
            trial compiles the same step. Defaults to False.
        task: `Task`; MULTILABEL trains a sigmoid head with binary cross-entropy (multi-hot labels).
            Defaults to MULTICLASS.
        positive_weights: tuple of float or None, per-class positive weights of that loss
            (imbalanced multi-label data). Defaults to None.
    """

    num_classes: int
    image_size: int
    epochs: int
    steps_per_epoch: int
    class_weight: dict | None = None
    bn_momentum: float = 0.9
    patience: int = 3
    objective: str = "val_accuracy"
    batch_size: int | None = None
    seed: int = 0
    dropout: float = 0.2
    class_names: list | None = None
    optimizer: str = "adam"
    augment: bool = False
    task: Task = Task.MULTICLASS
    positive_weights: tuple | None = None


@dataclass(frozen=True)
class SearchSpace:
    """What a search varies.

    Attributes:
        backbones: list of str, candidate backbones; more than one makes "backbone" a hyperparameter.
        stage_choices: list of int in 0..5, values of "trainable_stages" to search.
        learning_rate_range: (low, high), log-uniform learning-rate range. Defaults to (1e-4, 1e-2).
    """

    backbones: list
    stage_choices: list
    learning_rate_range: tuple = LEARNING_RATE_RANGE
