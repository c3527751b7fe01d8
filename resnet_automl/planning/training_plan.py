"""How long the trials and the final training run, decided once from the data, the options and the budget."""
from __future__ import annotations

import math
from dataclasses import dataclass

from resnet_automl.config.budget import Budget
from resnet_automl.config.options import FitOptions
from resnet_automl.config.task import Task
from resnet_automl.data.split import DatasetSplits
from resnet_automl.modeling.classifier import suggested_bn_momentum
from resnet_automl.planning import ranges
from resnet_automl.planning.schedule import default_epochs, default_final_epochs, default_trials
from resnet_automl.planning.selection import Plan


@dataclass(frozen=True)
class TrainingPlan:
    """How long the trials and the final training run.

    Attributes:
        steps: int, optimiser steps per trial epoch.
        epochs: int, epochs per trial.
        final_epochs: int, planned epochs of the final training (the time budget may change them).
        final_uses_val: bool, the final training also learns from the validation images.
        bn_momentum: float, BatchNorm momentum of the backbone.
        max_trials: int, tuner trials.
        task: `Task`, multi-class or multi-label.
        imbalanced: bool, the audit found the classes imbalanced.
        class_weight: dict or None, `{label: weight}` on imbalanced single-label data.
        train_images, val_images: ints, images in the two splits.
        batch_size: int, images per batch.
        positive_weights: tuple of float or None, per-class positive weights of the multi-label loss
            (imbalanced labels). Default None.
    """

    steps: int
    epochs: int
    final_epochs: int
    final_uses_val: bool
    bn_momentum: float
    max_trials: int
    task: Task
    imbalanced: bool
    class_weight: dict | None
    train_images: int
    val_images: int
    batch_size: int
    positive_weights: tuple | None = None

    @property
    def objective(self) -> str:
        """The search's objective (`Task.objective`)."""
        return self.task.objective(self.imbalanced)

    @property
    def final_val_images(self) -> int:
        """Images the final training validates on each epoch: val, or none when it learns from val."""
        return 0 if self.final_uses_val else self.val_images

    @property
    def final_images(self) -> int:
        """Images per epoch of the final training: train, plus val when it learns from val."""
        return self.train_images + (self.val_images if self.final_uses_val else 0)

    @property
    def final_steps(self) -> int:
        """Optimiser steps per epoch of the final training."""
        return max(1, math.ceil(self.final_images / self.batch_size))

    def work(self, *, trainable_stages: int, augment: bool, edge_formats: int = 0) -> Plan:
        """The selection's `Plan` of this work (what a throughput turns into minutes): the trials at
        their most expensive freeze depth (`trainable_stages`), behind augmentation when `augment`,
        and `edge_formats` LiteRT/ONNX files besides the SavedModel."""
        return Plan(trials=self.max_trials, epochs=self.epochs, final_epochs=self.final_epochs,
                    train_images=self.train_images, val_images=self.val_images, final_uses_val=self.final_uses_val,
                    trainable_stages=trainable_stages, batch_size=self.batch_size, augment=augment,
                    edge_formats=edge_formats)


def plan_training(splits: DatasetSplits, opts: FitOptions, budget: Budget, *, batch_size: int,
                  pretrained: bool) -> TrainingPlan:
    """The `TrainingPlan` of `splits` under the options, the budget, `batch_size` (int) and the
    starting weights (`pretrained`, bool): trial epochs from the steps per epoch, final epochs from
    the trials', the trial count from the search space; a multi-label dataset is searched by
    validation mAP with its positive weights, an imbalanced one by balanced accuracy with class weights."""
    train_images, val_images, task = len(splits.train), len(splits.val), splits.task
    imbalanced = bool(splits.audit.get("imbalanced"))
    steps = max(1, math.ceil(train_images / batch_size))
    epochs = opts.epochs or default_epochs(steps)
    final_uses_val = ranges.final_uses_val(opts, train_images, task)
    final_images = train_images + (val_images if final_uses_val else 0)
    final_steps = max(1, math.ceil(final_images / batch_size))
    final_epochs = opts.final_epochs or default_final_epochs(epochs, final_steps, pretrained,
                                                             epochs_chosen=opts.epochs is not None)
    positive_weights = splits.positive_weights()
    return TrainingPlan(
        steps=steps, epochs=epochs, final_epochs=final_epochs, final_uses_val=final_uses_val,
        bn_momentum=suggested_bn_momentum(epochs * steps),
        max_trials=budget.max_trials or default_trials(len(ranges.stage_choices(opts)), opts.backbones_named(),
                                                      pretrained=pretrained),
        task=task, imbalanced=imbalanced,
        class_weight=splits.class_weights() if imbalanced and not task.multilabel else None,
        positive_weights=tuple(positive_weights) if positive_weights else None,
        train_images=train_images, val_images=val_images, batch_size=batch_size)
