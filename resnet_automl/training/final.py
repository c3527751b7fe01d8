"""Final training of the best configuration: head from a linear probe (pretrained), fine-tuning with augmentation (early
stopping on val, or a fixed number of epochs on train + val), then BatchNorm statistics
re-estimated with the final weights. Backend-neutral."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import keras
import numpy as np

from resnet_automl.config.task import Task
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.modeling.augmentation import with_augmentation
from resnet_automl.modeling.classifier import build_classifier, compile_classifier, recalibrate_batchnorm
from resnet_automl.modeling.head import head_is_the_probe, initialise_head
from resnet_automl.runtime.files import write_json_atomic
from resnet_automl.runtime.interrupts import StopOnCtrlC
from resnet_automl.runtime.run_folder import RunLayout
from resnet_automl.training.callbacks import DeadlineCallback, PeriodicBackup, ScoredValidation, StopOnNaN
from resnet_automl.training.lr_schedule import ReplannedCosine
from resnet_automl.training.metrics import validation_score
from resnet_automl.weights.source import is_pretrained

logger = logging.getLogger(__name__)


def score_on(model, dataset, task: Task) -> float:
    """`task.score_metric` (accuracy, or mAP for a multi-label task) of a classifier on `ArrayBatches`
    of (pixels, label)."""
    return validation_score(model.predict(dataset, verbose=0), dataset.labels, task.score_metric)


@dataclass(frozen=True)
class FinalSettings:
    """How the final training runs.

    Attributes:
        num_classes: int, classes of the head.
        image_size: int, the square side the model takes.
        epochs: int, planned epochs.
        batch_size: int, images per batch.
        bn_momentum: float, BatchNorm momentum of the backbone. Defaults to 0.9.
        class_weight: dict or None, `{label: weight}` on imbalanced data. Defaults to None.
        deadline: float or None, the `time.time()` the training must end by. Defaults to None.
        seed: int, shuffle and augmentation seed. Defaults to 0.
        verbose: int, Keras' progress output. Defaults to 0.
        use_val: bool, the validation images join the training images and all `epochs` run with no
            early stopping and no validation score (val is then seen); otherwise early stopping
            watches val accuracy and restores the best epoch. Defaults to False.
        optimizer: "adam" (default) or "sgd" (`modeling.classifier.compile_classifier`).
        replan_to: int or None: the learning rate is set once per epoch and, with a `deadline`, the
            training re-plans its length from its own epoch times, up to `replan_to` epochs
            (`lr_schedule.ReplannedCosine`); a resumed training keeps `epochs`. None (default): the
            schedule is fixed per step over `epochs`.
        on_replan: callable(epochs) or None, told each new plan. Defaults to None.
        task: `Task`; MULTILABEL is a sigmoid head and binary cross-entropy, and early stopping
            watches val mAP. Defaults to MULTICLASS.
        positive_weights: list of float or None, per-class positive weights of that loss. Defaults to None.
    """

    num_classes: int
    image_size: int
    epochs: int
    batch_size: int
    bn_momentum: float = 0.9
    class_weight: dict | None = None
    deadline: float | None = None
    seed: int = 0
    verbose: int = 0
    use_val: bool = False
    optimizer: str = "adam"
    replan_to: int | None = None
    on_replan: object = None
    task: Task = Task.MULTICLASS
    positive_weights: tuple | None = None


def train_final(values: dict, *, arrays: dict, labels: dict, settings: FinalSettings, weights, out_dir,
                strategy=None, extra_callbacks=()) -> tuple:
    """Train `values` (backbone, trainable_stages, learning_rate) and return (model, history dict).

    `arrays` and `labels` map "train" and "val" to the uint8 images [N, S, S, 3] and their labels;
    `settings` is the `FinalSettings`; `weights` the backbone's starting weights; `strategy` a
    `tf.distribute.Strategy` or None; `extra_callbacks` are added to the main training (progress
    display, TensorBoard).

    With pretrained weights the head starts from a logistic regression on the pooled features
    (`modeling.head`, LP-FT), so a random head does not send large gradients into the pretrained stages.
    With every stage frozen on pretrained weights and few images (`head.head_is_the_probe`)
    nothing trains by gradient: the head is the linear probe on the training images, and the
    history says so (`linear_probe_images`, no epochs).

    Writes `out_dir/final/history.json` (the caller saves the weights it keeps); an interrupted
    run resumes from `out_dir/final/backup` (`callbacks.PeriodicBackup`: at most a minute of training lost).
    """
    s = settings
    final_dir = RunLayout(out_dir).final_dir
    final_dir.mkdir(parents=True, exist_ok=True)
    if s.use_val:
        images = np.concatenate([arrays["train"], arrays["val"]])
        image_labels = np.concatenate([labels["train"], labels["val"]])
    else:
        images, image_labels = arrays["train"], labels["train"]
    train_ds = ArrayBatches(images, image_labels, s.batch_size, shuffle=True, seed=s.seed)
    val_ds = None if s.use_val else ArrayBatches(arrays["val"], labels["val"], s.batch_size)
    steps = len(train_ds)
    stages, rate = int(values["trainable_stages"]), float(values["learning_rate"])
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build_classifier(values["backbone"], s.num_classes, image_size=s.image_size,
                                 trainable_stages=stages, weights=weights, bn_momentum=s.bn_momentum,
                                 multilabel=s.task.multilabel)
    probe_weight = s.class_weight or s.positive_weights
    if head_is_the_probe(stages, len(images), is_pretrained(weights)):
        return _probe_head(model, images, image_labels, probe_weight, s.seed, final_dir)
    with scope:
        trainer = with_augmentation(model, s.seed)
    resumed = (final_dir / "backup").exists()
    plan = None if s.replan_to is None else ReplannedCosine(rate, s.epochs, steps, None if resumed else s.deadline,
                                                            most_epochs=s.replan_to, on_replan=s.on_replan)
    if is_pretrained(weights) and not resumed:
        initialise_head(model, images, image_labels, class_weight=probe_weight, seed=s.seed)
        logger.info(f"[final] head initialised by a linear probe on the pooled features (LP-FT), then {s.epochs} "
                    f"epoch(s) with {stages} stage(s) unfrozen")
    with scope:
        # from random initialisation: end on an average of the weights (EMA), then precise BN below
        compile_classifier(trainer, rate, steps * s.epochs, s.optimizer, ema=not is_pretrained(weights),
                           learning_rate_schedule=plan is None, multilabel=s.task.multilabel,
                           positive_weights=list(s.positive_weights) if s.positive_weights else None)
    monitor = s.task.monitor
    early_stopping = [] if s.use_val else [
        *([ScoredValidation(val_ds, labels["val"], multilabel=True, as_compiled=True)] if s.task.multilabel else []),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=max(3, s.epochs // 3),
                                      restore_best_weights=True)]
    callbacks = [StopOnCtrlC(), PeriodicBackup(str(final_dir / "backup")), *early_stopping, StopOnNaN(),
                 DeadlineCallback(s.deadline), *([plan] if plan is not None else []), *extra_callbacks]
    if s.use_val:
        logger.info(f"[final] {s.epochs} epoch(s) on train + val ({len(images)} images); the test set stays unseen")
    # a multi-label model is validated by its `ScoredValidation` alone: one pass over val per epoch
    main = trainer.fit(train_ds, validation_data=None if s.task.multilabel else val_ds,
                       epochs=plan.most_epochs if plan else s.epochs,
                       class_weight=s.class_weight, callbacks=callbacks, verbose=s.verbose)
    history: dict = {}
    for key, series in main.history.items():
        history.setdefault(key, []).extend(float(v) for v in series)
    history["epochs_completed"] = (main.epoch[-1] + 1) if main.epoch else s.epochs  # absolute, across resumes
    history["epochs_planned"] = plan.epochs if plan else s.epochs
    if plan is not None:
        history["replans"], history["epoch_seconds"] = plan.replans, plan.epoch_seconds
    plain_train = ArrayBatches(images, image_labels, s.batch_size, shuffle=True, seed=s.seed + 1)
    history["bn_recalibration"] = _recalibrate_batchnorm(model, plain_train, val_ds, s.task)
    write_json_atomic(final_dir / "history.json", history, indent=1)
    return model, history


def _recalibrate_batchnorm(model, plain_train: ArrayBatches, val_ds: ArrayBatches | None, task: Task) -> dict:
    """Re-estimate BatchNorm statistics with the final weights; with `val_ds`, keep whichever
    statistics validate better. Returns the record kept in the history."""
    if val_ds is None:  # nothing unseen to choose with: the exact running statistics are the principled ones
        batches = recalibrate_batchnorm(model, plain_train)
        logger.info(f"[final] trained on train + val; BatchNorm statistics re-estimated over {batches} batch(es)")
        return {"batches": batches, "kept": "recalibrated"}
    metric = task.score_metric
    before = score_on(model, val_ds, task)
    saved = model.get_weights()
    batches = recalibrate_batchnorm(model, plain_train)
    after = score_on(model, val_ds, task)
    if after < before:
        model.set_weights(saved)
    logger.info(f"[final] val {task.score_name} {max(before, after):.4f} "
                f"(BatchNorm re-estimated: {before:.4f} -> {after:.4f})")
    return {"batches": batches, f"val_{metric}_before": before, f"val_{metric}_after": after,
            "kept": "recalibrated" if after >= before else "original"}


def _probe_head(model, images, labels, class_weight, seed, final_dir) -> tuple:
    """(model, history): `model` (its backbone frozen, pretrained) with a linear-probe head on `images`."""
    initialise_head(model, images, labels, class_weight=class_weight, seed=seed)
    history = {"linear_probe_images": int(len(images)), "epochs_completed": 0, "epochs_planned": 0}
    logger.info(f"[final] every stage frozen: the head is a logistic regression on the pooled features of "
                f"{len(images)} images (no gradient training)")
    write_json_atomic(final_dir / "history.json", history, indent=1)
    return model, history
