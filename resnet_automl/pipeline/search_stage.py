"""The search stage of `fit`: Keras Tuner over frozen depth x learning rate (x backbone), stopped
early when the time budget would not leave room for the final training, export and report."""
from __future__ import annotations

import json
import time

from resnet_automl.training.callbacks import tensorboard_callback
from resnet_automl.errors import ResNetAutoMLError
from resnet_automl.modeling.features import FeatureCache
from resnet_automl.modeling.head import head_is_the_probe
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.pipeline.result import FitResult
from resnet_automl.planning.schedule import final_training_seconds
from resnet_automl.search.tuner import best_trial, make_tuner, trials_table


class SearchStage:
    """`FitRun`'s search methods (a mixin: they read the run's settings, data and clock).

    Needs from the run: opts, splits, clock, record, chosen, image_size, epochs, final_epochs,
    steps, class_weight, bn_momentum, objective, batch_size, max_trials, strategy, source,
    final_reserve, reserve, trial_estimate_s, final_images, role, live, verbose, log, out, and
    the methods batches, labels, _timed, _measured_epoch_seconds.
    """

    def _out_of_time(self) -> bool:
        tuner = self.tuner
        if self.clock.deadline is None or not any(t.score is not None for t in tuner.oracle.trials.values()):
            return False  # no limit, or nothing to export yet: at least one trial runs
        mean = tuner.mean_trial_seconds() or self.trial_estimate_s
        return self.clock.remaining() < mean + self.final_seconds() + self.reserve

    def final_seconds(self) -> float:
        """Seconds the final training needs: the plan's estimate from the probe, or more when the
        trials so far ran slower per epoch than the probe promised."""
        per_epoch = self._measured_epoch_seconds()
        if not per_epoch:
            return self.final_reserve
        return max(self.final_reserve, final_training_seconds(per_epoch, len(self.splits.train), self.final_images,
                                                              self.final_epochs, self.final_val_images))

    def _make_tuner(self):
        opts, splits, clock = self.opts, self.splits, self.clock
        self.hypermodel = ResNetHyperModel(
            backbones=self.chosen, num_classes=splits.num_classes, image_size=self.image_size,
            stage_choices=opts.stage_choices(), weights=self.source, epochs=self.epochs,
            class_names=splits.class_names,
            steps_per_epoch=self.steps, class_weight=self.class_weight, bn_momentum=self.bn_momentum,
            learning_rate_range=opts.resolved_learning_rate_range(), optimizer=opts.resolved_optimizer(),
            augment=not self.source.pretrained,
            balanced_val=(self.batches("val"), self.labels["val"]) if self.class_weight else None,
            deadline_fn=(lambda: clock.deadline - self.final_seconds() - self.reserve) if clock.deadline else None,
            objective=self.objective, batch_size=self.batch_size, seed=opts.seed,
            feature_cache=(FeatureCache(self.out / "cache", opts.feature_cache_memory_mb * 2**20)
                           if opts.feature_cache else None),
            train_items=splits.train, val_items=splits.val)
        self.tuner = make_tuner(opts.tuner, self.hypermodel, objective=self.objective, max_trials=self.max_trials,
                                directory=self.out, seed=opts.seed, overwrite=False, epochs=self.epochs,
                                should_stop=self._out_of_time, distribution_strategy=self.strategy, log=self.log,
                                live_progress=self.live, budget_left=self.clock.remaining)
        self.tuner.after_search_seconds = self.final_reserve + self.reserve
        choices = opts.stage_choices()
        if 0 in choices and len(choices) > 1 and head_is_the_probe(0, len(splits.train), self.source.pretrained):
            # a frozen trial is a linear probe (seconds): it opens the search, then the centre of the space
            self.tuner.oracle.openings = [{"trainable_stages": 0}, {}]

    def search(self):
        """Run (or resume) the search; return the best trial, or None in a distributed worker."""
        self._make_tuner()
        tuner, started = self.tuner, time.time()
        if not self.record.stage_done("search"):
            choices = self.opts.stage_choices()
            backbones = "x backbone " + str(self.chosen) if len(self.chosen) > 1 else self.chosen[0]
            self.log(f"[search] {self.opts.tuner} over trainable_stages {choices} x learning rate "
                     f"{self.opts.resolved_learning_rate_range()} ({self.opts.resolved_optimizer()}, {backbones}), "
                     f"up to {self.max_trials} trials of "
                     f"{self.epochs} epochs, objective {self.objective}")
            try:
                tuner.search(self.batches("train", shuffle=True), validation_data=self.batches("val"), epochs=self.epochs,
                             verbose=1 if self.verbose > 1 else 0,
                             callbacks=[tensorboard_callback(self.out / "logs" / "search")])
            except RuntimeError as exc:
                if "consecutive failures" not in str(exc):
                    raise
                last = str(exc).strip().splitlines()[-1]
                raise ResNetAutoMLError(f"The search stopped: {tuner.oracle.max_consecutive_failed_trials} trials "
                                        f"in a row failed (last: {last}). Lower the learning-rate range or the "
                                        "batch size, then rerun the same command to resume.") from None
            if self.role == "worker":
                return None
            tuner.prune_checkpoints()  # the chief of a distributed search: workers left one per trial
            self._timed("search_s", started)
            cache = self.hypermodel.feature_cache
            self.record.mark_done("search", trials=trials_table(tuner), search_stopped_for_time=self._out_of_time(),
                                  feature_cache=None if cache is None else
                                  {"computed": cache.computed, "reused": cache.reused})
        self.trials = trials_table(tuner)
        best = best_trial(tuner.oracle)
        if best is None:
            reasons = "; ".join(f"trial {t['trial_id']}: {t['status']} {t['message']}" for t in self.trials)
            raise ResNetAutoMLError(f"No tuner trial completed ({reasons or 'none ran'}). Give the fit more time "
                                    "(--minutes) or check the data; rerun with --overwrite to start the search "
                                    "again.")
        self.best_values = dict(best.hyperparameters.values)
        self.log(f"[search] best: {self.best_values} ({self.objective} {best.score:.4f}; ties broken by val loss)")
        return best

    def worker_result(self) -> FitResult:
        tuner = self.tuner
        self.log(f"[worker {tuner.tuner_id}] the chief reports the search finished; it trains and exports")
        mine = json.loads(tuner.timings_path.read_text()) if tuner.timings_path.exists() else {}
        return FitResult(model=None, class_names=self.splits.class_names, backbone=self.chosen[0],
                         best_hyperparameters={}, trials=[{"trial_id": k, "seconds": v} for k, v in mine.items()],
                         paths={"run_dir": str(self.out)})
