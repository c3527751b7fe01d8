"""Final training of the best configuration: head from a linear probe (pretrained), fine-tuning with augmentation (early
stopping on val, or a fixed number of epochs on train + val), then BatchNorm statistics
re-estimated with the final weights. Backend-neutral."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import keras
import numpy as np

from resnet_automl.modeling.augmentation import with_augmentation
from resnet_automl.training.callbacks import DeadlineCallback, PeriodicBackup, StopOnNaN
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.training.lr_schedule import ReplannedCosine
from resnet_automl.modeling.head import head_is_the_probe, initialise_head
from resnet_automl.runtime.interrupts import StopOnCtrlC
from resnet_automl.modeling.classifier import build_classifier, compile_classifier, recalibrate_batchnorm
from resnet_automl.weights.source import is_pretrained


def accuracy_on(model, dataset) -> float:
    """Accuracy (float) of a classifier on `ArrayBatches` of (pixels, label)."""
    probabilities = model.predict(dataset, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == dataset.labels))


def train_final(values: dict, *, arrays: dict, labels: dict, num_classes: int, image_size: int, weights,
                epochs: int, batch_size: int, bn_momentum: float, out_dir, class_weight=None,
                deadline: float | None = None, seed: int = 0, verbose: int = 0, log=print, strategy=None,
                use_val: bool = False, extra_callbacks=(), optimizer: str = "adam", replan_to: int | None = None,
                on_replan=None) -> tuple:
    """Train `values` (backbone, trainable_stages, learning_rate) and return (model, history dict).

    `arrays` and `labels` map "train" and "val" to the uint8 images [N, S, S, 3] and their labels.
    `extra_callbacks` are added to the main training (progress display, TensorBoard); `optimizer`
    is "adam" or "sgd" (`model.compile_classifier`).

    With pretrained weights the head starts from a logistic regression on the pooled features
    (`head_init`, LP-FT), so a random head does not send large gradients into the pretrained stages.

    With `use_val` (bool, default False) the validation images join the training images and all
    `epochs` run (the learning rate decays to its floor at the end) with no early stopping and no
    validation score, since val is then seen; otherwise early stopping watches val accuracy and
    restores the best epoch.

    With `replan_to` (int or None, default None) the learning rate is set once per epoch and, with
    a `deadline`, the training re-plans its length from its own epoch times, up to `replan_to`
    epochs (`final_schedule.ReplannedCosine`; `on_replan(epochs)` is told each new plan); a resumed
    training keeps `epochs` (its caller must pass `replan_to` again: the optimiser's state differs).
    Without it the schedule is fixed per step over `epochs`.

    With every stage frozen on pretrained weights and few images (`head_init.head_is_the_probe`)
    nothing trains by gradient: the head is the linear probe on the training images, and the
    history says so (`linear_probe_images`, no epochs).

    Writes `out_dir/final/history.json` (the caller saves the weights it keeps); an interrupted
    run resumes from `out_dir/final/backup` (`callbacks.PeriodicBackup`: at most a minute of training lost).
    """
    final_dir = Path(out_dir) / "final"
    final_dir.mkdir(parents=True, exist_ok=True)
    if use_val:
        images = np.concatenate([arrays["train"], arrays["val"]])
        image_labels = np.concatenate([labels["train"], labels["val"]])
    else:
        images, image_labels = arrays["train"], labels["train"]
    train_ds = ArrayBatches(images, image_labels, batch_size, shuffle=True, seed=seed)
    plain_train = ArrayBatches(images, image_labels, batch_size, shuffle=True, seed=seed + 1)
    val_ds = None if use_val else ArrayBatches(arrays["val"], labels["val"], batch_size)
    steps = len(train_ds)
    stages, rate = int(values["trainable_stages"]), float(values["learning_rate"])
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build_classifier(values["backbone"], num_classes, image_size=image_size,
                                 trainable_stages=stages, weights=weights, bn_momentum=bn_momentum)
    if head_is_the_probe(stages, len(images), is_pretrained(weights)):
        return _probe_head(model, images, image_labels, class_weight, seed, final_dir, log)
    with scope:
        trainer = with_augmentation(model, seed)
    history: dict = {}
    resumed = (final_dir / "backup").exists()
    plan = None if replan_to is None else ReplannedCosine(rate, epochs, steps, None if resumed else deadline,
                                                          most_epochs=replan_to, on_replan=on_replan)
    if is_pretrained(weights) and not resumed:
        initialise_head(model, images, image_labels, class_weight=class_weight, seed=seed)
        log(f"[final] head initialised by a linear probe on the pooled features (LP-FT), then {epochs} "
            f"epoch(s) with {stages} stage(s) unfrozen")
    with scope:
        # from random initialisation: end on an average of the weights (EMA), then precise BN below
        compile_classifier(trainer, rate, steps * epochs, optimizer, ema=not is_pretrained(weights),
                           learning_rate_schedule=plan is None)
    early_stopping = [] if use_val else [keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=max(3, epochs // 3), restore_best_weights=True)]
    callbacks = [
        StopOnCtrlC(),
        PeriodicBackup(str(final_dir / "backup")),
        *early_stopping,
        StopOnNaN(),
        DeadlineCallback(deadline),
        *([plan] if plan is not None else []),
        *extra_callbacks,
    ]
    if use_val:
        log(f"[final] {epochs} epoch(s) on train + val ({len(images)} images); the test set stays unseen")
    main = trainer.fit(train_ds, validation_data=val_ds, epochs=plan.most_epochs if plan else epochs,
                       class_weight=class_weight,
                       callbacks=callbacks, verbose=verbose)
    for key, series in main.history.items():
        history.setdefault(key, []).extend(float(v) for v in series)
    history["epochs_completed"] = (main.epoch[-1] + 1) if main.epoch else epochs  # absolute, across resumes
    history["epochs_planned"] = plan.epochs if plan else epochs
    if plan is not None:
        history["replans"], history["epoch_seconds"] = plan.replans, plan.epoch_seconds
    if use_val:  # nothing unseen to choose with: the exact running statistics are the principled ones
        batches = recalibrate_batchnorm(model, plain_train)
        history["bn_recalibration"] = {"batches": batches, "kept": "recalibrated"}
        log(f"[final] trained on train + val; BatchNorm statistics re-estimated over {batches} batch(es)")
    else:
        before = accuracy_on(model, val_ds)
        saved = model.get_weights()
        batches = recalibrate_batchnorm(model, plain_train)
        after = accuracy_on(model, val_ds)
        if after < before:  # keep whichever statistics validate better
            model.set_weights(saved)
        history["bn_recalibration"] = {"batches": batches, "val_accuracy_before": before, "val_accuracy_after": after,
                                       "kept": "recalibrated" if after >= before else "original"}
        log(f"[final] val accuracy {max(before, after):.4f} (BatchNorm re-estimated: {before:.4f} -> {after:.4f})")
    (final_dir / "history.json").write_text(json.dumps(history, indent=1))
    return model, history


def _probe_head(model, images, labels, class_weight, seed, final_dir, log) -> tuple:
    """(model, history): `model` (its backbone frozen, pretrained) with a linear-probe head on `images`."""
    initialise_head(model, images, labels, class_weight=class_weight, seed=seed)
    history = {"linear_probe_images": int(len(images)), "epochs_completed": 0, "epochs_planned": 0}
    log(f"[final] every stage frozen: the head is a logistic regression on the pooled features of {len(images)} "
        "images (no gradient training)")
    (final_dir / "history.json").write_text(json.dumps(history, indent=1))
    return model, history
