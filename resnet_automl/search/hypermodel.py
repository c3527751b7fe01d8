"""The Keras Tuner `HyperModel`: freeze depth x learning rate (x backbone) over one classifier."""
from __future__ import annotations

import contextlib
import logging
import math

import keras
import keras_tuner as kt
import numpy as np

from resnet_automl.backbones import build_backbone, get_spec, set_trainable_stages
from resnet_automl.config.options import NUM_STAGES
from resnet_automl.modeling.assembly import attach_head, backbone_of
from resnet_automl.modeling.augmentation import with_augmentation
from resnet_automl.modeling.classifier import compile_classifier
from resnet_automl.modeling.features import FeatureCache, feature_dataset, split_classifier
from resnet_automl.modeling.head import head_is_the_probe
from resnet_automl.modeling.starting_weights import load_pretrained
from resnet_automl.runtime.device import is_out_of_memory
from resnet_automl.runtime.interrupts import StopOnCtrlC
from resnet_automl.search.phases import TrialPhases, ValidationTimer
from resnet_automl.search.probe_trial import ProbeHeads, predict_probe, restore_probe, save_probe_head
from resnet_automl.search.space import SearchSpace, TrialSettings
from resnet_automl.training.callbacks import (
    DeadlineCallback,
    EpochTimer,
    KeepBestEpoch,
    ScoredValidation,
    StopOnNaN,
)
from resnet_automl.training.lr_schedule import ReplannedCosine
from resnet_automl.training.metrics import validation_logs
from resnet_automl.weights.io import classifier_metadata
from resnet_automl.weights.source import cache_token, is_pretrained

logger = logging.getLogger(__name__)


class ResNetHyperModel(kt.HyperModel):
    """Builds and fits one trial's classifier.

    Args:
        space: the `SearchSpace`.
        weights: None, "imagenet", a path or a `weights.source.WeightsSource`, for the backbone.
        settings: the `TrialSettings` every trial trains with.
        scored_val: (val_dataset, labels) or None; when given, trials report the objective
            (`val_balanced_accuracy`, or `val_map` for multi-label data) computed by scikit-learn.
        deadline_fn: callable returning the `time.time()` a trial must end by, or None.
        feature_cache: a `FeatureCache` or None. With it (and `items`), a trial with frozen stages
            trains only its tail on cached frozen-prefix features.
        items: (train items, val items), the lists of (path, label) behind the datasets (the cache
            key), or None.
    """

    def __init__(self, space: SearchSpace, settings: TrialSettings, *, weights=None, scored_val=None,
                 deadline_fn=None, feature_cache=None, items: tuple | None = None):
        super().__init__(name="resnet_automl")
        self.backbones = list(space.backbones)
        self.stage_choices = sorted(set(space.stage_choices))
        self.learning_rate_range = tuple(space.learning_rate_range)
        self.weights, self.settings = weights, settings
        for name, value in vars(settings).items():  # the settings read as attributes of the hypermodel
            setattr(self, name, value)
        self.class_names = None if settings.class_names is None else list(settings.class_names)
        self.scored_val, self.deadline_fn = scored_val, deadline_fn
        self.feature_cache = feature_cache
        self.train_items, self.val_items = items if items is not None else (None, None)
        self._probe_heads = ProbeHeads(settings.seed, settings.num_classes,
                                       settings.class_weight or settings.positive_weights)
        #: The current trial's `TrialPhases` (the tuner sets a fresh one per trial).
        self.phases = TrialPhases()
        self._models: dict | None = None  # backbone -> (classifier, starting weights) while reusing

    @property
    def probe_at_depth_zero(self) -> bool:
        """True when a trial with every stage frozen is the linear probe (`head.head_is_the_probe`):
        the learning rate has no effect there, so it is declared only for the other depths."""
        return self.train_items is not None and head_is_the_probe(0, len(self.train_items),
                                                                   is_pretrained(self.weights))

    def declare(self, hp: kt.HyperParameters) -> dict:
        """Declare the search space on `hp` and return this trial's values.

        The learning rate is conditional on `trainable_stages` != 0 when depth 0 is the linear
        probe (`probe_at_depth_zero`): Keras Tuner then never proposes two probes that differ only
        in a learning rate nothing reads. The returned dict holds None for an inactive value.
        """
        if len(self.backbones) > 1:
            backbone = hp.Choice("backbone", self.backbones)
        else:
            backbone = hp.Fixed("backbone", self.backbones[0])
        if len(self.stage_choices) > 1:  # defaults: the centre of the space (the first trial's values)
            stages = hp.Choice("trainable_stages", self.stage_choices,
                               default=self.stage_choices[len(self.stage_choices) // 2])
        else:
            stages = hp.Fixed("trainable_stages", self.stage_choices[0])
        low, high = self.learning_rate_range
        trained = [s for s in self.stage_choices if s != 0] if self.probe_at_depth_zero else self.stage_choices
        if not trained:  # the probe alone: nothing has a learning rate
            return {"backbone": backbone, "trainable_stages": stages, "learning_rate": None}
        with hp.conditional_scope("trainable_stages", trained):
            rate = hp.Float("learning_rate", low, high, sampling="log", default=float(math.sqrt(low * high)))
        return {"backbone": backbone, "trainable_stages": stages, "learning_rate": rate}

    def learning_rate(self, hp) -> float:
        """The trial's learning rate, or the range's centre where it is inactive (the probe)."""
        rate = hp.values.get("learning_rate")
        low, high = self.learning_rate_range
        return float(rate) if rate is not None else float(math.sqrt(low * high))

    def effective_values(self, hp) -> dict:
        """The hyperparameters that change what a trial computes: the active ones (Keras Tuner's
        bookkeeping such as Hyperband's "tuner/..." aside, but its epochs kept for trained trials)."""
        values = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
        if "tuner/epochs" in hp.values and not self.is_probe(hp):
            values["epochs"] = hp.values["tuner/epochs"]
        if self.is_probe(hp):
            values.pop("learning_rate", None)
        return values

    def is_probe(self, hp) -> bool:
        """True when this trial's head is the linear probe and nothing trains."""
        return int(hp.values["trainable_stages"]) == 0 and self.probe_at_depth_zero

    def weights_metadata(self, hp: kt.HyperParameters) -> dict:
        """The description stored with a trial's checkpoint (`weights.io.classifier_metadata`)."""
        return classifier_metadata(hp.values["backbone"], num_classes=self.num_classes, class_names=self.class_names,
                                   image_size=self.image_size, trainable_stages=hp.values["trainable_stages"],
                                   **({"task": str(self.task)} if self.task.multilabel else {}))

    @property
    def reuses_models(self) -> bool:
        """True inside `reusing_models` (the tuner then keeps the Keras session between trials)."""
        return self._models is not None

    @contextlib.contextmanager
    def reusing_models(self):
        """Within the block, trials of one backbone share one built classifier, reset to the starting
        weights kept in memory, instead of building and loading it again (seconds per trial on a
        ResNet-50); the models are released at the end."""
        self._models = {}
        try:
            yield
        finally:
            self._models = None

    def _classifier(self, backbone: str, stages: int) -> keras.Model:
        """The classifier of `backbone` at its starting weights with `stages` trainable."""
        cached = self._models.get(backbone) if self._models is not None else None
        if cached is not None:
            model, start = cached
            with self.phases.time("weights"):
                for variable, value in zip(model.weights, start, strict=True):
                    variable.assign(value)
        else:
            spec = get_spec(backbone)
            with self.phases.time("build"):
                net = build_backbone(spec, (self.image_size, self.image_size, 3), bn_momentum=self.bn_momentum)
            with self.phases.time("weights"):
                load_pretrained(net, spec, self.weights)
            with self.phases.time("build"):
                model = attach_head(net, spec, self.num_classes, image_size=self.image_size, dropout=self.dropout,
                                    multilabel=self.task.multilabel)
            if self._models is not None:
                with self.phases.time("weights"):
                    self._models[backbone] = (model, [np.array(v.numpy()) for v in model.weights])
        set_trainable_stages(backbone_of(model), int(stages))
        return model

    def build(self, hp):
        values = self.declare(hp)
        model = self._classifier(values["backbone"], values["trainable_stages"])
        if not self.is_probe(hp):  # a probe only predicts
            with self.phases.time("compile"):
                compile_classifier(model, self.learning_rate(hp), self.epochs * self.steps_per_epoch, self.optimizer,
                                   **self.loss_settings)
        return model

    @property
    def loss_settings(self) -> dict:
        """`compile_classifier`'s loss arguments: multilabel and positive_weights."""
        return {"multilabel": self.task.multilabel,
                "positive_weights": None if self.positive_weights is None else list(self.positive_weights)}

    @property
    def validation_scores(self) -> dict:
        """`metrics.validation_logs`' arguments for this search's trials: multilabel, and balanced on
        a single-label search scored by scikit-learn (`scored_val`)."""
        multilabel = self.task.multilabel
        return {"multilabel": multilabel, "balanced": self.scored_val is not None and not multilabel}

    def _with_own_callbacks(self, scored_val, callbacks) -> list:
        """The trial's callbacks: the hypermodel's own (validation timer, Ctrl+C, NaN, early stopping,
        deadline) before `callbacks`; with `scored_val` ((dataset, labels) or None), first of all the
        `ScoredValidation` that is then the epoch's one validation pass (fit runs without
        `validation_data`), heard by the timers."""
        own = [ValidationTimer(self.phases), StopOnCtrlC(), StopOnNaN(),
               keras.callbacks.EarlyStopping(monitor=self.objective, mode="max", patience=self.patience)]
        if self.deadline_fn is not None:
            own.append(DeadlineCallback(self.deadline_fn()))
        callbacks = own + list(callbacks or [])
        if scored_val is None:
            return callbacks
        timers = [c for c in callbacks if isinstance(c, (ValidationTimer, EpochTimer))]
        return [ScoredValidation(*scored_val, **self.validation_scores, listeners=timers), *callbacks]

    def _trainer(self, hp, model, callbacks):
        """What trains: `model`, or (with `augment`) `model` behind the augmentation layers, whose
        checkpoint still holds `model` alone."""
        if not self.augment:
            return model
        trainer = with_augmentation(model, self.seed)
        # the learning rate set once per epoch, as in the final training, not a schedule compiled in: every
        # trial then compiles the same training step, which JAX's compilation cache serves after the first
        # (`compile_cache.enable_compilation_cache`)
        with self.phases.time("compile"):
            compile_classifier(trainer, self.learning_rate(hp), self.epochs * self.steps_per_epoch, self.optimizer,
                               learning_rate_schedule=False, **self.loss_settings)
        callbacks[:] = [c for c in callbacks if not isinstance(c, ReplannedCosine)]  # a retry at half batch
        callbacks.append(ReplannedCosine(self.learning_rate(hp), self.epochs, self.steps_per_epoch))
        for callback in callbacks:
            if isinstance(callback, KeepBestEpoch):
                callback.save_model = model
        return trainer

    def uses_feature_cache(self, hp) -> bool:
        return (self.feature_cache is not None and self.train_items is not None and self.val_items is not None
                and hp.values["trainable_stages"] < NUM_STAGES)

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        """Fit one trial; a NaN loss fails the trial, an out-of-memory error retries at half batch once.

        `args[0]` (or `x`) and `validation_data` are `ArrayBatches`. With the feature cache and
        frozen stages, only the tail trains, on cached features. With pretrained weights the head
        starts from a linear probe on the pooled features (`head_init`, LP-FT); with every stage
        frozen as well (`head_init.head_is_the_probe`) nothing trains: the probe is scored on val and
        the trial returns that dict of metrics instead of a `History`.
        """
        train_data = args[0] if args else kwargs["x"]
        self._initialise_head(hp, model, train_data)
        if head_is_the_probe(hp.values["trainable_stages"], len(train_data.labels), is_pretrained(self.weights)):
            return self._score_probe(model, kwargs["validation_data"], callbacks or [])
        try:
            if self.uses_feature_cache(hp):
                history = self._fit_on_features(hp, model, list(callbacks or []), args, kwargs)
            else:
                callbacks = self._with_own_callbacks(self.scored_val, callbacks)
                if self.scored_val is not None:  # scored by `ScoredValidation` in one pass
                    kwargs = {k: v for k, v in kwargs.items() if k != "validation_data"}
                try:
                    trainer = self._trainer(hp, model, callbacks)
                    history = trainer.fit(*args, class_weight=self.class_weight, callbacks=callbacks, **kwargs)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    history = self._retry_at_half_batch(hp, model, args, kwargs, callbacks)
        except kt.errors.FailedTrialError:
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            raise kt.errors.FailedTrialError("out of memory while computing features; lower --batch-size or "
                                             "--image-size") from None
        losses = history.history.get("loss", [])
        if not losses or any(not math.isfinite(value) for value in losses):
            raise kt.errors.FailedTrialError(
                f"the training loss became NaN or infinite ({values_repr(hp)}); "
                "the trial is marked failed and the search goes on")
        return history

    def _initialise_head(self, hp, model, train_data) -> None:
        """With pretrained weights: the head of `model` from its backbone's linear probe (LP-FT)."""
        if is_pretrained(self.weights):
            self._probe_heads.initialise(hp.values["backbone"], model, train_data, self.phases)

    def _score_probe(self, model, val_data, callbacks) -> dict:
        """The val metrics of `model` with its probe head as it stands (no training); its checkpoint
        is the head alone (`probe_trial.save_probe_head`)."""
        probabilities = predict_probe(model, val_data, self.phases)
        metrics = validation_logs(probabilities, val_data.labels, **self.validation_scores)
        save_probe_head(model, callbacks, self.phases)
        return metrics

    @staticmethod
    def restore_probe(model, checkpoint_path) -> bool:
        """`probe_trial.restore_probe` (the tuner's `load_model` asks the hypermodel)."""
        return restore_probe(model, checkpoint_path)

    def _fit_on_features(self, hp, model, callbacks, args, kwargs):
        """Train the trainable tail + head on cached frozen-prefix features (same batches, same math)."""
        values = hp.values
        stages = values["trainable_stages"]
        prefix, tail = split_classifier(model, stages)
        train_data = args[0] if args else kwargs["x"]
        val_data = kwargs["validation_data"]
        batch = self.batch_size or train_data.batch_size
        arrays = []
        with self.phases.time("features"):
            for items, data in ((self.train_items, train_data), (self.val_items, val_data)):
                key = FeatureCache.key(values["backbone"], cache_token(self.weights), self.image_size,
                                       NUM_STAGES - stages, items)
                arrays.append(self.feature_cache.features(key, prefix, data.array, batch))
        train = feature_dataset(arrays[0], train_data.labels, batch, shuffle=True, seed=train_data.seed)
        val = feature_dataset(arrays[1], val_data.labels, batch)
        with self.phases.time("compile"):
            compile_classifier(tail, self.learning_rate(hp), self.epochs * self.steps_per_epoch, self.optimizer,
                               **self.loss_settings)
        for callback in callbacks:  # the trial's checkpoint holds the full classifier, not just the tail
            if isinstance(callback, KeepBestEpoch):
                callback.save_model = model
        scored = (val, val_data.labels) if self.scored_val is not None else None
        fit_kwargs = {k: v for k, v in kwargs.items() if k in ("epochs", "verbose", "initial_epoch")}
        return tail.fit(train, validation_data=None if scored else val, class_weight=self.class_weight,
                        callbacks=self._with_own_callbacks(scored, callbacks), **fit_kwargs)

    def _retry_at_half_batch(self, hp, model, args, kwargs, callbacks):
        data = args[0] if args else kwargs.pop("x")
        batch = data.batch_size
        if batch < 2:
            raise kt.errors.FailedTrialError("out of memory at batch 1; lower --image-size")
        half = batch // 2
        logger.warning(f"[trial] out of memory at batch {batch}: retrying once at batch {half}")
        keras.backend.clear_session(free_memory=True)
        model = self.build(hp)
        self._initialise_head(hp, model, data)
        trainer = self._trainer(hp, model, callbacks)
        kwargs = dict(kwargs)
        if kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = kwargs["validation_data"].rebatched(half)
        try:
            return trainer.fit(data.rebatched(half), *args[1:], class_weight=self.class_weight, callbacks=callbacks,
                               **kwargs)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            raise kt.errors.FailedTrialError(f"out of memory at batch {batch} and again at batch {half}; "
                                             "lower --batch-size or --image-size") from None


def values_repr(hp) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.values.items())
