"""The task: one label per image (multi-class) or any number of labels (multi-label).

Every stage that behaves differently for the two asks the `Task` (its objective, the score that
compares models, the metric early stopping watches) instead of testing label shapes or flags.
A `Task` is a `str`, so it is written to JSON as "multiclass" or "multilabel" and compares equal
to those strings.
"""
from __future__ import annotations

import enum


class Task(str, enum.Enum):
    """Multi-class (softmax over the classes) or multi-label (one sigmoid per label).

    Example:
        >>> Task("multilabel").objective(imbalanced=False)
        'val_map'
    """

    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, multilabel: bool) -> Task:
        """`MULTILABEL` when `multilabel` (bool) is true, else `MULTICLASS`."""
        return cls.MULTILABEL if multilabel else cls.MULTICLASS

    @property
    def multilabel(self) -> bool:
        return self is Task.MULTILABEL

    def objective(self, imbalanced: bool) -> str:
        """The search's Keras Tuner objective: "val_map" (multi-label), "val_balanced_accuracy"
        (multi-class with `imbalanced` classes) or "val_accuracy"."""
        if self.multilabel:
            return "val_map"
        return "val_balanced_accuracy" if imbalanced else "val_accuracy"

    @property
    def score_metric(self) -> str:
        """The metric that compares two models on held-out images (`metrics.validation_score`):
        "map" (mean average precision over labels) or "accuracy"."""
        return "map" if self.multilabel else "accuracy"

    @property
    def score_name(self) -> str:
        """`score_metric` as a reader reads it: "mAP" or "accuracy"."""
        return "mAP" if self.multilabel else "accuracy"

    @property
    def monitor(self) -> str:
        """The validation log the final training's early stopping and progress line watch."""
        return f"val_{self.score_metric}"
