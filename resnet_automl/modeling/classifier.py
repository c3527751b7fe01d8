"""The classifier: resize + normalisation + backbone + pooling + dropout + softmax head (sigmoid for
multi-label data), in one Keras model that takes float32 RGB pixels in 0..255 of any size."""
from __future__ import annotations

import math

import keras

from resnet_automl.backbones import build_backbone, get_spec, set_trainable_stages
from resnet_automl.modeling.assembly import attach_head
from resnet_automl.modeling.starting_weights import load_pretrained
from resnet_automl.runtime import device

LR_WARMUP_FRACTION = 0.1


def suggested_bn_momentum(total_steps: int) -> float:
    """BatchNorm momentum whose moving statistics settle within the steps a run will take.

    Keras' default 0.99 needs ~500 steps to forget its initial statistics: on small data the
    evaluation-mode network then sees wrong statistics and scores near chance. We pick
    1 - 5/steps, clipped to [0.8, 0.99] (0.9 is PyTorch's default).
    """
    return float(min(0.99, max(0.8, 1.0 - 5.0 / max(total_steps, 1))))


def build_classifier(backbone: str, num_classes: int, *, image_size: int, trainable_stages: int,
                     weights=None, dropout: float = 0.2, bn_momentum: float = 0.9,
                     multilabel: bool = False) -> keras.Model:
    """Build the full classifier with `trainable_stages` of the backbone unfrozen.

    Args:
        backbone: str, registry name.
        num_classes: int, outputs of the softmax head.
        image_size: int, square side the images are resized to inside the model.
        trainable_stages: int 0..5, stages (from conv5 down) that train; 0 trains the head only.
        weights: None, "imagenet", a run folder or a `.weights.h5` path (see `weights.source`), or a
            resolved `pretrained.WeightsSource`, for the backbone. Defaults to None.
        dropout: float, dropout rate before the head. Defaults to 0.2.
        bn_momentum: float, BatchNorm momentum of the backbone. Defaults to 0.9.
        multilabel: bool, a sigmoid head for multi-label data. Defaults to False.
    """
    spec = get_spec(backbone)
    net = build_backbone(spec, (image_size, image_size, 3), bn_momentum=bn_momentum)
    load_pretrained(net, spec, weights)
    set_trainable_stages(net, trainable_stages)
    return attach_head(net, spec, num_classes, image_size=image_size, dropout=dropout, multilabel=multilabel)


#: Weight decay of SGD (the CIFAR ResNet recipe; applied to every variable, as PyTorch's SGD does).
SGD_WEIGHT_DECAY = 5e-4


def ema_momentum(total_steps: int) -> float:
    """Momentum of an exponential moving average of the weights spanning ~10% of the training."""
    return float(min(0.999, max(0.9, 1.0 - 10.0 / max(total_steps, 1))))


def warmup_cosine(learning_rate: float, total_steps: int) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from `learning_rate` / 10 to `learning_rate` over LR_WARMUP_FRACTION of
    `total_steps` (int), then cosine decay to 5% of `learning_rate` at `total_steps`."""
    warmup = max(1, int(math.ceil(LR_WARMUP_FRACTION * total_steps)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * 0.1, decay_steps=max(1, total_steps - warmup), alpha=0.05,
        warmup_target=learning_rate, warmup_steps=warmup)


@keras.saving.register_keras_serializable(package="resnet_automl")
class MultiLabelCrossentropy(keras.losses.Loss):
    """Binary cross-entropy of a sigmoid head, summed over the labels (averaged over images), with the
    positive term of label c weighted by `positive_weights[c]` (PyTorch's `pos_weight`).

    Summed, each logit's gradient is p - y, as under softmax cross-entropy, so the learning rates
    searched for single-label models carry over. Keras' `BinaryCrossentropy` averages over the labels,
    which divides every gradient by their number: a ten-label model from random initialisation then
    learnt only the label frequencies in its 3 final epochs (training loss 0.651 -> 0.632, the
    entropy of the label prior; benchmarks/multilabel.py, first run).

    Args:
        positive_weights: list of float, one per label, or None (default): every weight 1.
    """

    def __init__(self, positive_weights=None, name: str = "multilabel_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.positive_weights = None if positive_weights is None else [float(w) for w in positive_weights]

    def call(self, y_true, y_pred):
        ops = keras.ops
        epsilon = keras.config.epsilon()
        y_pred = ops.clip(ops.cast(y_pred, "float32"), epsilon, 1.0 - epsilon)
        y_true = ops.cast(y_true, "float32")
        positive = y_true * ops.log(y_pred)
        if self.positive_weights is not None:
            positive = positive * ops.convert_to_tensor(self.positive_weights, "float32")
        return -ops.sum(positive + (1.0 - y_true) * ops.log(1.0 - y_pred), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "positive_weights": self.positive_weights}


def loss_and_metrics(multilabel: bool = False, positive_weights: list | None = None) -> tuple:
    """(loss, metrics) of a classifier: sparse cross-entropy and accuracy, or for `multilabel` the
    `MultiLabelCrossentropy` (weighted by `positive_weights`, a list of float, when given) and the
    share of correct (image, label) decisions at 0.5, named "accuracy" as well."""
    if not multilabel:
        return keras.losses.SparseCategoricalCrossentropy(), [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return MultiLabelCrossentropy(positive_weights), [keras.metrics.BinaryAccuracy(name="accuracy")]


def compile_classifier(model: keras.Model, learning_rate: float, total_steps: int, optimizer: str = "adam",
                       ema: bool = False, learning_rate_schedule: bool = True, multilabel: bool = False,
                       positive_weights: list | None = None) -> None:
    """Compile with linear warm-up then cosine decay over `total_steps` (`warmup_cosine`) and the
    loss of `loss_and_metrics(multilabel, positive_weights)`.

    Args:
        optimizer: "adam" (default) or "sgd" (Nesterov momentum 0.9, weight decay `SGD_WEIGHT_DECAY`).
        ema: bool, keep an exponential moving average of the weights (`ema_momentum`) and end
            training on it (Keras' `use_ema`; BatchNorm statistics should be re-estimated after).
            Defaults to False.
        learning_rate_schedule: bool, False for a constant learning rate (`learning_rate` / 10, the
            warm-up's start) that a callback sets each epoch (`final_schedule.ReplannedCosine`).
            Defaults to True.
        multilabel: bool, binary cross-entropy for a sigmoid head. Defaults to False.
        positive_weights: list of float or None, per-class positive weights of that loss. Defaults to None.
    """
    schedule = warmup_cosine(learning_rate, total_steps) if learning_rate_schedule else learning_rate * 0.1
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=SGD_WEIGHT_DECAY,
                                   use_ema=ema, ema_momentum=ema_momentum(total_steps))
    elif optimizer == "adam":
        opt = keras.optimizers.Adam(schedule, use_ema=ema, ema_momentum=ema_momentum(total_steps))
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd'. Received: optimizer={optimizer!r}")
    loss, metrics = loss_and_metrics(multilabel, positive_weights)
    model.compile(optimizer=opt, loss=loss, metrics=metrics, jit_compile=device.jit_compile())


def recalibrate_batchnorm(model: keras.Model, dataset, max_batches: int = 20) -> int:
    """Re-estimate the moving statistics of trainable BatchNorm layers with the final weights.

    Runs up to `max_batches` batches of `dataset` (an `ArrayBatches` without augmentation) through
    the model in training mode with momentum i/(i+1), i.e. an exact running mean over batches
    ("precise BN"). Frozen BN layers are untouched. Returns the number of batches used.
    """
    layers = [layer for layer in _all_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    used = 0
    try:
        for used in range(1, min(max_batches, len(dataset)) + 1):
            images, _ = dataset[used - 1]
            for layer in layers:
                layer.momentum = (used - 1) / used
            model(keras.ops.convert_to_tensor(images, "float32"), training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return used


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
