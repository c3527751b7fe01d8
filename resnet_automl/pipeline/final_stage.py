"""The final-training stage of `fit`: the best configuration trained on train (or train + val) for
the epochs the time budget holds, its learning-rate schedule re-planned from its own epochs, and the
better of it and the best trial kept."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from resnet_automl.data.scan import file_sha256
from resnet_automl.modeling.classifier import build_classifier
from resnet_automl.modeling.head import head_is_the_probe
from resnet_automl.pipeline.context import BackboneChoice, RunContext, RunData
from resnet_automl.pipeline.search_stage import SearchOutcome
from resnet_automl.planning import ranges
from resnet_automl.planning.schedule import epochs_fitting, final_epochs_ceiling
from resnet_automl.planning.training_plan import TrainingPlan
from resnet_automl.runtime.progress import LiveProgress
from resnet_automl.training.callbacks import tensorboard_callback
from resnet_automl.training.final import FinalSettings, score_on, train_final
from resnet_automl.training.metrics import choose_thresholds
from resnet_automl.weights.io import load_weights, save_weights

logger = logging.getLogger(__name__)

#: A re-planned final training is logged when its plan moved by this fraction since the last line.
REPLAN_LOG_FRACTION = 0.05
#: The final training is skipped (the best trial's model exported) with less than this many trial
#: epochs' time left.
MIN_FINAL_EPOCHS_OF_TIME = 2


@dataclass
class FinalModel:
    """What the final-training stage produced.

    Attributes:
        model: the `keras.Model` to export (the final training's, or the best trial's).
        history: dict, the final training's per-epoch curves and counts ({} when it was skipped).
        thresholds: list of float or None, a multi-label model's decision threshold per label
            (None for a single-label model).
        threshold_table: dict or None, label -> how its threshold was chosen (the report's table).
        weights_sha256: str or None, of the final weights file (what an export records it was made from).
    """

    model: object
    history: dict
    thresholds: list | None = None
    threshold_table: dict | None = None
    weights_sha256: str | None = None


class ReplanLog:
    """Records the final training's plan (a resume keeps it), shows it on the live line, and logs
    a re-plan when it moved by `REPLAN_LOG_FRACTION` or more from the plan last logged (the plan
    follows the mean epoch time after every epoch, mostly by an epoch or two).

    Args:
        record: the run's `RunRecord` (or any object with `update(**values)`).
        planned: int, the plan at the start (counts as logged).
        live: the `LiveProgress` of the final training, or None.
    """

    def __init__(self, record, planned: int, live=None):
        self.record, self.logged, self.live = record, planned, live

    @staticmethod
    def start(record, planned: int, replan_to: int | None) -> None:
        """Record the plan at the start of the final training: `planned` epochs, re-planned up to `replan_to`."""
        record.update(final_epochs_run=planned, final_replan_to=replan_to)

    def __call__(self, epochs: int) -> None:
        self.record.update(final_epochs_run=epochs)
        if self.logged is None or abs(epochs - self.logged) >= max(2, REPLAN_LOG_FRACTION * self.logged):
            logger.info(f"[final] re-planned from its own epoch times: {epochs} epochs")
            self.logged = epochs
        if self.live is not None:
            self.live.epochs = epochs


def fitting_final_epochs(ctx: RunContext, plan: TrainingPlan, choice: BackboneChoice,
                         search: SearchOutcome) -> tuple[int, int | None]:
    """(epochs, replan_to) of the final training.

    `epochs` is the plan fitted to the rest of the time budget from the trials' epoch times
    (`schedule.epochs_fitting`): fewer than planned when it cannot hold them; from random
    initialisation with automatic epochs, more (up to `schedule.final_epochs_ceiling`) when it has
    room. `replan_to` (int, or None without a time budget or with final epochs chosen) is the most
    epochs the training may re-plan to from its own epoch times (`lr_schedule.ReplannedCosine`).
    A resumed final training keeps both.
    """
    record = ctx.record
    if record.final_epochs_run:
        return record.final_epochs_run, record.final_replan_to
    planned, replan_to = plan.final_epochs, None
    per_epoch = search.clock.measured_epoch_seconds() or choice.epoch_s
    if ctx.clock.deadline is not None and per_epoch and not ctx.opts.final_epochs:
        seconds_left = ctx.clock.remaining() - choice.reserve
        automatic = not ctx.source.pretrained and ctx.opts.epochs is None
        grow_to = final_epochs_ceiling(plan.final_steps) if automatic else None
        epochs = epochs_fitting(planned, per_epoch, plan.train_images, plan.final_images, seconds_left,
                                grow_to=grow_to, compile_s=2 * choice.first_step_s,  # two graph builds
                                val_images=plan.final_val_images)
        if epochs != planned:
            logger.info(f"[final] {epochs} epochs fit the time left (planned {planned}; re-planned from the "
                        "final training's own epoch times after its first epochs)")
        planned, replan_to = epochs, max(epochs, grow_to or plan.final_epochs)
    ReplanLog.start(record, planned, replan_to)
    return planned, replan_to


def _keep_better_of_final_and_trial(ctx: RunContext, model, search: SearchOutcome, val_ds, task):
    """Whichever of the final model and the best trial's model validates better (by `task.score_metric`)."""
    final_score = score_on(model, val_ds, task)
    trial_model = search.tuner.load_model(search.best_trial)
    trial_score = score_on(trial_model, val_ds, task)
    metric = f"val {task.score_name}"
    if trial_score > final_score:
        ctx.note(f"The best search trial's model validated better than the final training "
                 f"({trial_score:.4f} vs {final_score:.4f} {metric}) and is the one exported.")
        logger.info(f"[final] keeping the best trial's model ({trial_score:.4f} > {final_score:.4f} {metric})")
        return trial_model
    return model


def _final_epochs_note(ctx: RunContext, plan: TrainingPlan, history: dict, started_left_s: float) -> None:
    """Say in the report when the final training re-planned its length from its own epochs."""
    planned = history.get("epochs_planned")
    if not history.get("replans") or planned == plan.final_epochs:
        return
    seconds = history.get("epoch_seconds")
    per_epoch = f" at {seconds:.1f} s per epoch" if seconds else ""
    ctx.note(f"The final training was planned at {planned} epochs ({plan.final_epochs} before the time "
             f"budget): {started_left_s / 60:.1f} min were left at its start, and it re-planned its "
             f"learning-rate schedule from its own epoch times{per_epoch} to end, decayed, within the budget.")


def _run_final_training(ctx: RunContext, data: RunData, plan: TrainingPlan, choice: BackboneChoice,
                        search: SearchOutcome, probe_head: bool):
    """Train the best configuration; returns (model, history, planned epochs)."""
    final_epochs, replan_to = (0, None) if probe_head else fitting_final_epochs(ctx, plan, choice, search)
    live = None
    if ctx.live and not probe_head:
        live = LiveProgress("final", final_epochs, ctx.clock.remaining,
                            "accuracy" if plan.final_uses_val else plan.task.monitor)
    settings = FinalSettings(
        num_classes=data.splits.num_classes, image_size=data.image_size, epochs=final_epochs,
        batch_size=ctx.batch_size, bn_momentum=plan.bn_momentum, class_weight=plan.class_weight,
        deadline=None if ctx.clock.deadline is None else ctx.clock.deadline - choice.reserve,
        seed=ctx.opts.seed, verbose=ctx.keras_verbose, use_val=plan.final_uses_val,
        optimizer=ranges.optimizer(ctx.opts), replan_to=replan_to,
        on_replan=ReplanLog(ctx.record, final_epochs, live), task=plan.task,
        positive_weights=plan.positive_weights)
    model, history = train_final(
        search.best_values, arrays={name: data.images(name) for name in ("train", "val")}, labels=data.labels,
        settings=settings, weights=ctx.source, out_dir=ctx.out, strategy=ctx.setup.strategy,
        extra_callbacks=[tensorboard_callback(ctx.layout.logs_dir / "final"), *([live] if live else [])])
    return model, history, history.get("epochs_planned", final_epochs)


def _choose_final_model(ctx: RunContext, data: RunData, plan: TrainingPlan, search: SearchOutcome,
                        trained: tuple, probe_head: bool):
    """The model to export after the final training, with the report's note on why."""
    model, history, final_epochs = trained
    if not all(math.isfinite(v) for v in history.get("loss", [])):
        ctx.note("The final training's loss became NaN or infinite; the best search trial's model is exported "
                 "instead.")
        logger.info("[final] the loss became NaN: exporting the best trial's model")
        return search.tuner.load_model(search.best_trial)
    if probe_head:
        ctx.note(f"Every stage frozen: the head is a logistic regression (scikit-learn) on the pretrained "
                 f"backbone's pooled features of {history['linear_probe_images']} "
                 f"{'train + val' if plan.final_uses_val else 'train'} images; no gradient training, "
                 "no augmentation.")
        return model
    if plan.final_uses_val and history["epochs_completed"] == final_epochs:
        ctx.note(f"The final training learnt from train + val ({plan.train_images} + {plan.val_images} images) "
                 f"for {final_epochs} epochs without early stopping (final_data='auto' below 5,000 training "
                 "images, or 'train+val'); the test set was never seen.")
        return model
    if plan.final_uses_val:  # on train + val but cut short by the deadline
        ctx.note(f"The final training on train + val was cut short by the time budget after "
                 f"{history['epochs_completed']} of {final_epochs} epochs; it is kept only if it beats the "
                 "best trial on val, which it has seen (a comparison that favours it).")
    return _keep_better_of_final_and_trial(ctx, model, search, data.batches("val"), plan.task)


def decision_thresholds(ctx: RunContext, data: RunData, plan: TrainingPlan, model) -> tuple[list, dict]:
    """A multi-label model's per-label thresholds (list of float), each maximising F1 on the validation
    images (`metrics.choose_thresholds`), and the table of how each was chosen (label -> row)."""
    rows = choose_thresholds(data.labels["val"], model.predict(data.batches("val"), verbose=0))
    table = {name: row for name, row in zip(data.splits.class_names, rows, strict=True)}
    thresholds = [row["threshold"] for row in rows]
    defaults = [name for name, row in table.items() if row["positives"] == 0]
    ctx.note(f"Per-label decision thresholds maximise F1 on the {plan.val_images} validation images"
             + (", which the final training also learnt from (final_data='train+val'): they are optimistic."
                if plan.final_uses_val else "."))
    if defaults:
        ctx.note(f"No validation image has the label(s) {', '.join(defaults)}: their threshold stays at 0.5.")
    logger.info("[final] thresholds (max F1 on val): "
                + ", ".join(f"{name} {row['threshold']:.2f}" for name, row in list(table.items())[:10])
                + (" ..." if len(table) > 10 else ""))
    return thresholds, table


def train(ctx: RunContext, data: RunData, plan: TrainingPlan, choice: BackboneChoice, search: SearchOutcome,
          metadata: dict) -> FinalModel:
    """Final training (or the best trial's model when no time is left); a resumed run reloads it.

    `metadata` (dict) is stored with the final weights (`weights.io.save_weights`).
    """
    layout, record, started = ctx.layout, ctx.record, time.time()
    values = search.best_values
    if record.stage_done("final"):
        model = build_classifier(values["backbone"], data.splits.num_classes, image_size=data.image_size,
                                 trainable_stages=values["trainable_stages"], bn_momentum=plan.bn_momentum,
                                 multilabel=plan.task.multilabel)
        load_weights(model, layout.final_weights)
        return FinalModel(model, record.history, record.thresholds, record.threshold_table,
                          file_sha256(layout.final_weights))
    layout.final_dir.mkdir(exist_ok=True)
    time_left = ctx.clock.remaining() - choice.reserve
    history = {}
    if ctx.clock.deadline is not None and choice.epoch_s and time_left < MIN_FINAL_EPOCHS_OF_TIME * choice.epoch_s:
        model = search.tuner.load_model(search.best_trial)
        ctx.note("Final training skipped: the time budget was spent; the best search trial's model is exported.")
        logger.info("[final] no time left: exporting the best trial's model")
    else:
        probe_head = head_is_the_probe(values["trainable_stages"], plan.final_images, ctx.source.pretrained)
        left_s = ctx.clock.remaining()
        trained = _run_final_training(ctx, data, plan, choice, search, probe_head)
        history = trained[1]
        _final_epochs_note(ctx, plan, history, left_s)
        model = _choose_final_model(ctx, data, plan, search, trained, probe_head)
    thresholds, table = decision_thresholds(ctx, data, plan, model) if plan.task.multilabel else (None, None)
    if thresholds is not None:
        metadata = {**metadata, "thresholds": thresholds}
    save_weights(model, layout.final_weights, metadata)
    if not ctx.source.pretrained:
        ctx.note("Search trials and the final training used horizontal flips, shifts and random erasing.")
    elif not history.get("linear_probe_images"):
        ctx.note("Search trials ran without augmentation (trials with frozen stages train on cached features); "
                 "the final training used horizontal flips, shifts and random erasing.")
    ctx.timed("final_s", started)
    record.mark_done("final", best_hyperparameters=values, history=history, notes=ctx.notes,
                     thresholds=thresholds, threshold_table=table)
    return FinalModel(model, history, thresholds, table, file_sha256(layout.final_weights))
