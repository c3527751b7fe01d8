"""The search stage of `fit`: Keras Tuner over frozen depth x learning rate (x backbone), stopped
early when the time budget would not leave room for the final training, export and report."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from resnet_automl.errors import ResNetAutoMLError
from resnet_automl.modeling.features import FeatureCache
from resnet_automl.pipeline.context import BackboneChoice, RunContext, RunData
from resnet_automl.pipeline.result import FitResult
from resnet_automl.planning import ranges
from resnet_automl.planning.schedule import final_training_seconds, median_epoch_seconds
from resnet_automl.planning.training_plan import TrainingPlan
from resnet_automl.search.contract import SearchHooks
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.search.space import SearchSpace, TrialSettings
from resnet_automl.search.tuner import SearchFailedError, best_trial, make_tuner, trials_table
from resnet_automl.training.callbacks import tensorboard_callback

logger = logging.getLogger(__name__)


class SearchClock:
    """When the search must stop starting trials, and how long the final training will take.

    Args:
        ctx: the `RunContext` (its clock and options).
        plan: the `TrainingPlan`.
        choice: the `BackboneChoice` (estimates from the probe).
    """

    def __init__(self, ctx: RunContext, plan: TrainingPlan, choice: BackboneChoice):
        self.ctx, self.plan, self.choice = ctx, plan, choice
        self.tuner = None

    def measured_epoch_seconds(self) -> float | None:
        """Median training seconds of the epochs of this process's trials that trained the whole model
        (validation and checkpointing left out: `callbacks.EpochTimer`), or None before any.

        When every such trial ran one epoch only (a short budget stops trials early), that epoch
        less the probe's first-step seconds (building and compiling) stands in: the probe's own
        throughput was 1.7x pessimistic for resnet20_lean at 64 px on JAX (50.6 img/s against 86 in
        the final training), and a final training planned from it left 40% of a 6-minute budget
        unused (benchmarks/multilabel.py). None when that difference is under a quarter of the epoch.
        """
        if self.tuner is None:
            return None
        measured = median_epoch_seconds(self.tuner.full_model_epoch_seconds)
        first = median_epoch_seconds(self.tuner.full_model_first_epoch_seconds)
        if measured is not None or first is None:
            return measured
        rest = first - self.choice.first_step_s
        return rest if rest > 0.25 * first else None

    def final_seconds(self) -> float:
        """Seconds the final training needs: the plan's estimate from the probe, or more when the
        trials so far ran slower per epoch than the probe promised."""
        per_epoch = self.measured_epoch_seconds()
        if not per_epoch:
            return self.choice.final_reserve
        plan = self.plan
        return max(self.choice.final_reserve, final_training_seconds(
            per_epoch, plan.train_images, plan.final_images, plan.final_epochs, plan.final_val_images))

    def trial_deadline(self) -> float:
        """The `time.time()` a trial must end by to leave the final training, export and report their time."""
        return self.ctx.clock.deadline - self.final_seconds() - self.choice.reserve

    def out_of_time(self) -> bool:
        """True when another trial would not leave the final training, export and report their time."""
        tuner = self.tuner
        if self.ctx.clock.deadline is None or tuner is None \
                or not any(t.score is not None for t in tuner.oracle.trials.values()):
            return False  # no limit, or nothing to export yet: at least one trial runs
        mean = tuner.mean_trial_seconds() or self.choice.trial_estimate_s
        return self.ctx.clock.remaining() < mean + self.final_seconds() + self.choice.reserve


@dataclass
class SearchOutcome:
    """What the search produced.

    Attributes:
        tuner: the `TimedTuner` (its project holds the best trial's checkpoint).
        best_trial: the best completed Keras Tuner trial.
        best_values: dict, its hyperparameters (backbone, trainable_stages, learning_rate: for a
            linear-probe trial, which has none, the range's centre, read only if the final training
            trains the head by gradient).
        trials: list of dicts, the trials table.
        clock: the `SearchClock`, with the trials' measured epoch times.
    """

    tuner: object
    best_trial: object
    best_values: dict
    trials: list
    clock: SearchClock


def _make_tuner(ctx: RunContext, data: RunData, plan: TrainingPlan, choice: BackboneChoice, clock: SearchClock):
    opts, splits = ctx.opts, data.splits
    settings = TrialSettings(
        num_classes=splits.num_classes, image_size=data.image_size, epochs=plan.epochs, steps_per_epoch=plan.steps,
        class_weight=plan.class_weight, bn_momentum=plan.bn_momentum, objective=plan.objective,
        batch_size=ctx.batch_size, seed=opts.seed, class_names=list(splits.class_names),
        optimizer=ranges.optimizer(opts), augment=not ctx.source.pretrained, task=plan.task,
        positive_weights=plan.positive_weights)
    space = SearchSpace(backbones=list(choice.chosen), stage_choices=ranges.stage_choices(opts),
                        learning_rate_range=ranges.learning_rate_range(opts))
    hypermodel = ResNetHyperModel(
        space, settings, weights=ctx.source,
        scored_val=(data.batches("val"), data.labels["val"]) if plan.objective != "val_accuracy" else None,
        deadline_fn=clock.trial_deadline if ctx.clock.deadline else None,
        feature_cache=(FeatureCache(ctx.layout.cache_dir, opts.feature_cache_memory_mb * 2**20)
                       if opts.feature_cache else None),
        items=(splits.train, splits.val))
    hooks = SearchHooks(should_stop=clock.out_of_time, live_progress=ctx.live, budget_left=ctx.clock.remaining,
                        after_search_seconds=choice.final_reserve + choice.reserve)
    return make_tuner(opts.tuner, hypermodel, objective=plan.objective, max_trials=plan.max_trials,
                      directory=ctx.out, seed=opts.seed, epochs=plan.epochs, hooks=hooks,
                      distribution_strategy=ctx.setup.strategy)


def _run_search(ctx: RunContext, data: RunData, plan: TrainingPlan, choice: BackboneChoice, tuner) -> None:
    opts = ctx.opts
    backbones = "x backbone " + str(choice.chosen) if len(choice.chosen) > 1 else choice.chosen[0]
    logger.info(f"[search] {opts.tuner} over trainable_stages {ranges.stage_choices(opts)} x learning rate "
                f"{ranges.learning_rate_range(opts)} ({ranges.optimizer(opts)}, {backbones}), "
                f"up to {plan.max_trials} trials of {plan.epochs} epochs, objective {plan.objective}")
    try:
        tuner.search(data.batches("train", shuffle=True), validation_data=data.batches("val"), epochs=plan.epochs,
                     verbose=ctx.keras_verbose, callbacks=[tensorboard_callback(ctx.layout.logs_dir / "search")])
    except SearchFailedError as exc:
        raise ResNetAutoMLError(f"The search stopped: {exc.failures} trials in a row failed (last: {exc.last}). "
                                "Lower the learning-rate range or the batch size, then rerun the same command "
                                "to resume.") from None


def search(ctx: RunContext, data: RunData, plan: TrainingPlan, choice: BackboneChoice) -> SearchOutcome:
    """Run (or resume) the search and return its outcome (in a distributed worker, without a best trial)."""
    clock = SearchClock(ctx, plan, choice)
    tuner = clock.tuner = _make_tuner(ctx, data, plan, choice, clock)
    started = time.time()
    if ctx.record.stage_done("search"):
        trials = trials_table(tuner)
    else:
        _run_search(ctx, data, plan, choice, tuner)
        if ctx.role == "worker":
            return SearchOutcome(tuner=tuner, best_trial=None, best_values={}, trials=[], clock=clock)
        tuner.prune_checkpoints()  # the chief of a distributed search: workers left one per trial
        ctx.timed("search_s", started)
        trials, cache = trials_table(tuner), tuner.hypermodel.feature_cache
        ctx.record.mark_done("search", trials=trials, search_stopped_for_time=clock.out_of_time(),
                             feature_cache=None if cache is None else
                             {"computed": cache.computed, "reused": cache.reused})
    best = best_trial(tuner.oracle)
    if best is None:
        reasons = "; ".join(f"trial {t['trial_id']}: {t['status']} {t['message']}" for t in trials)
        raise ResNetAutoMLError(f"No tuner trial completed ({reasons or 'none ran'}). Give the fit more time "
                                "(--minutes) or check the data; rerun with --overwrite to start the search again.")
    values = dict(best.hyperparameters.values)
    # the probe has no learning rate; the final training reads one if it trains the head by gradient
    values.setdefault("learning_rate", tuner.hypermodel.learning_rate(best.hyperparameters))
    logger.info(f"[search] best: {values} ({plan.objective} {best.score:.4f}; ties broken by val loss)")
    return SearchOutcome(tuner=tuner, best_trial=best, best_values=values, trials=trials, clock=clock)


def worker_result(ctx: RunContext, data: RunData, choice: BackboneChoice, tuner) -> FitResult:
    """What `fit` returns in a distributed worker: the trials it ran (the chief trains and exports)."""
    logger.info(f"[worker {tuner.tuner_id}] the chief reports the search finished; it trains and exports")
    mine = json.loads(tuner.timings_path.read_text()) if tuner.timings_path.exists() else {}
    return FitResult(model=None, class_names=data.splits.class_names, backbone=choice.chosen[0],
                     best_hyperparameters={}, trials=[{"trial_id": k, "seconds": v} for k, v in mine.items()],
                     paths={"run_dir": str(ctx.out)})
