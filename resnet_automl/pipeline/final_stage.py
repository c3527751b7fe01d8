"""The final-training stage of `fit`: the best configuration trained on train (or train + val) for
the epochs the time budget holds, its learning-rate schedule re-planned from its own epochs, and the
better of it and the best trial kept."""
from __future__ import annotations

import math
import time

from resnet_automl.training.callbacks import tensorboard_callback
from resnet_automl.modeling.head import head_is_the_probe
from resnet_automl.modeling.classifier import build_classifier
from resnet_automl.runtime.progress import LiveProgress
from resnet_automl.planning.schedule import epochs_fitting, final_epochs_ceiling, median_epoch_seconds
from resnet_automl.training.final import accuracy_on, train_final
from resnet_automl.weights.io import load_weights, save_weights


def _keep_better_of_final_and_trial(model, tuner, best_trial, val_ds, log, notes):
    """Export whichever of the final model and the best trial's model validates better."""
    final_score = accuracy_on(model, val_ds)
    trial_model = tuner.load_model(best_trial)
    trial_score = accuracy_on(trial_model, val_ds)
    if trial_score > final_score:
        notes.append(f"The best search trial's model validated better than the final training "
                     f"({trial_score:.4f} vs {final_score:.4f} val accuracy) and is the one exported.")
        log(f"[final] keeping the best trial's model ({trial_score:.4f} > {final_score:.4f} val accuracy)")
        return trial_model
    return model


#: A re-planned final training is logged when its plan moved by this fraction since the last line.
REPLAN_LOG_FRACTION = 0.05


class FinalStage:
    """`FitRun`'s final-training methods (a mixin: they read the run's settings, data and clock).

    Needs from the run: opts, splits, clock, record, source, tuner, best_values, final_epochs,
    epoch_s, first_step_s, reserve, final_uses_val, image_size, batch_size, bn_momentum,
    class_weight, labels, strategy, live, verbose, notes, log, out, and the methods images,
    batches, weights_metadata, _timed.
    """

    @property
    def final_val_images(self) -> int:
        """Images the final training validates on each epoch: val, or none when it learns from val."""
        return 0 if self.final_uses_val else len(self.splits.val)

    @property
    def final_images(self) -> int:
        """Images per epoch of the final training: train, plus val when it learns from val."""
        return len(self.splits.train) + (len(self.splits.val) if self.final_uses_val else 0)

    @property
    def final_steps(self) -> int:
        """Optimiser steps per epoch of the final training."""
        return max(1, math.ceil(self.final_images / self.batch_size))

    # ------------------------------------------------------------------ final training
    def _measured_epoch_seconds(self) -> float | None:
        """Median training seconds (validation and checkpointing left out: `callbacks.EpochTimer`)
        of the epochs of this process's trials that trained the whole model."""
        return median_epoch_seconds(getattr(self, "tuner", None) and self.tuner.full_model_epoch_seconds)

    def fitting_final_epochs(self) -> tuple[int, int | None]:
        """(epochs, replan_to) of the final training. `epochs` is the plan fitted to the rest of the
        time budget from the trials' epoch times (`schedule.epochs_fitting`): fewer than planned
        when it cannot hold them; from random initialisation with automatic epochs, more (up to
        `schedule.final_epochs_ceiling`) when it has room. `replan_to` (int, or None without a time
        budget or with final epochs chosen) is the most epochs the training may re-plan to from its
        own epoch times (`final_schedule.ReplannedCosine`). A resumed final training keeps both."""
        if self.record.get("final_epochs_run"):
            return int(self.record.get("final_epochs_run")), self.record.get("final_replan_to")
        planned, replan_to = self.final_epochs, None
        per_epoch = self._measured_epoch_seconds() or self.epoch_s
        if self.clock.deadline is not None and per_epoch and not self.opts.final_epochs:
            seconds_left = self.clock.remaining() - self.reserve
            automatic = not self.source.pretrained and self.opts.epochs is None
            grow_to = final_epochs_ceiling(self.final_steps) if automatic else None
            epochs = epochs_fitting(planned, per_epoch, len(self.splits.train), self.final_images, seconds_left,
                                    grow_to=grow_to, compile_s=2 * self.first_step_s,  # two graph builds
                                    val_images=self.final_val_images)
            if epochs != planned:
                self.log(f"[final] {epochs} epochs fit the time left (planned {planned}; re-planned from the "
                         "final training's own epoch times after its first epochs)")
            planned, replan_to = epochs, max(epochs, grow_to or self.final_epochs)
        self.record.update(final_epochs_run=planned, final_replan_to=replan_to)
        return planned, replan_to

    def _replanned(self, epochs: int, live) -> None:
        """Record a re-planned final training (a resume keeps it) and show it on the live line; log it
        when it moved by `REPLAN_LOG_FRACTION` or more from the plan last logged (the plan follows the
        mean epoch time after every epoch, mostly by an epoch or two)."""
        self.record.update(final_epochs_run=epochs)
        logged = getattr(self, "_logged_plan", None)
        if logged is None or abs(epochs - logged) >= max(2, REPLAN_LOG_FRACTION * logged):
            self.log(f"[final] re-planned from its own epoch times: {epochs} epochs")
            self._logged_plan = epochs
        if live is not None:
            live.epochs = epochs

    def _note_final_epochs(self, history: dict, started_left_s: float) -> None:
        """Say in the report when the final training re-planned its length from its own epochs."""
        planned = history.get("epochs_planned")
        if not history.get("replans") or planned == self.final_epochs:
            return
        seconds = history.get("epoch_seconds")
        per_epoch = f" at {seconds:.1f} s per epoch" if seconds else ""
        self.notes.append(f"The final training was planned at {planned} epochs ({self.final_epochs} before the time "
                          f"budget): {started_left_s / 60:.1f} min were left at its start, and it re-planned its "
                          f"learning-rate schedule from its own epoch times{per_epoch} to end, decayed, within "
                          "the budget.")

    def train(self, best_trial):
        """Final training (or the best trial's model when no time is left); returns (model, history)."""
        final_dir, record, started = self.out / "final", self.record, time.time()
        if record.stage_done("final"):
            model = build_classifier(self.best_values["backbone"], self.splits.num_classes, image_size=self.image_size,
                                     trainable_stages=self.best_values["trainable_stages"],
                                     bn_momentum=self.bn_momentum)
            load_weights(model, final_dir / "model.weights.h5")
            return model, record.get("history", {})
        final_dir.mkdir(exist_ok=True)
        time_left = self.clock.remaining() - self.reserve
        if self.clock.deadline is not None and self.epoch_s and time_left < 2 * self.epoch_s:
            model, history = self.tuner.load_model(best_trial), {}
            self.notes.append("Final training skipped: the time budget was spent; the best search trial's model "
                              "is exported.")
            self.log("[final] no time left: exporting the best trial's model")
        else:
            probe_head = head_is_the_probe(self.best_values["trainable_stages"], self.final_images,
                                           self.source.pretrained)
            final_epochs, replan_to = (0, None) if probe_head else self.fitting_final_epochs()
            self._logged_plan = final_epochs
            left_s = self.clock.remaining()
            live = None if probe_head else LiveProgress("final", final_epochs, self.clock.remaining,
                                "accuracy" if self.final_uses_val else "val_accuracy") if self.live else None
            model, history = train_final(
                self.best_values, arrays={name: self.images(name) for name in ("train", "val")}, labels=self.labels,
                num_classes=self.splits.num_classes, image_size=self.image_size, weights=self.source,
                epochs=final_epochs, batch_size=self.batch_size, bn_momentum=self.bn_momentum, out_dir=self.out,
                class_weight=self.class_weight,
                deadline=None if self.clock.deadline is None else self.clock.deadline - self.reserve,
                seed=self.opts.seed, verbose=1 if self.verbose > 1 else 0, log=self.log, strategy=self.strategy,
                use_val=self.final_uses_val, optimizer=self.opts.resolved_optimizer(),
                replan_to=replan_to, on_replan=lambda epochs: self._replanned(epochs, live),
                extra_callbacks=[tensorboard_callback(self.out / "logs" / "final"), *([live] if live else [])])
            final_epochs = history.get("epochs_planned", final_epochs)
            self._note_final_epochs(history, left_s)
            if not all(math.isfinite(v) for v in history.get("loss", [])):
                model = self.tuner.load_model(best_trial)
                self.notes.append("The final training's loss became NaN or infinite; the best search trial's model "
                                  "is exported instead.")
                self.log("[final] the loss became NaN: exporting the best trial's model")
            elif probe_head:
                self.notes.append(f"Every stage frozen: the head is a logistic regression (scikit-learn) on the "
                                  f"pretrained backbone's pooled features of {history['linear_probe_images']} "
                                  f"{'train + val' if self.final_uses_val else 'train'} images; no gradient "
                                  "training, no augmentation.")
            elif self.final_uses_val and history["epochs_completed"] == final_epochs:
                self.notes.append(f"The final training learnt from train + val ({len(self.splits.train)} + "
                                  f"{len(self.splits.val)} images) for {final_epochs} epochs without early "
                                  "stopping (final_data='auto' below 5,000 training images, or 'train+val'); the "
                                  "test set was never seen.")
            else:  # trained on train only, or on train + val but cut short by the deadline
                if self.final_uses_val:
                    self.notes.append(f"The final training on train + val was cut short by the time budget after "
                                      f"{history['epochs_completed']} of {final_epochs} epochs; it is kept "
                                      "only if it beats the best trial on val, which it has seen (a comparison "
                                      "that favours it).")
                model = _keep_better_of_final_and_trial(model, self.tuner, best_trial, self.batches("val"), self.log,
                                                        self.notes)
        save_weights(model, final_dir / "model.weights.h5", self.weights_metadata())
        if not self.source.pretrained:
            self.notes.append("Search trials and the final training used horizontal flips, shifts and random erasing.")
        elif not history.get("linear_probe_images"):
            self.notes.append("Search trials ran without augmentation (trials with frozen stages train on cached "
                              "features); the final training used horizontal flips, shifts and random erasing.")
        self._timed("final_s", started)
        record.mark_done("final", best_hyperparameters=self.best_values, history=history, notes=self.notes)
        return model, history
