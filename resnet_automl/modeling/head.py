"""Linear-probe initialisation of the classifier head (LP-FT).

With pretrained weights the head starts random, so the first fine-tuning steps send large, random
gradients into the pretrained stages, and a head-only trial of a few dozen steps on a small dataset
does not even reach what a logistic regression on the same features reaches (measured in
benchmarks/transfer.py: 0.33 vs 0.89 on unseen images at 10 images per class). Kumar et al., "Fine-
Tuning can Distort Pretrained Features and Underperform Out-of-Distribution" (ICLR 2022), fit a
linear probe first and fine-tune from it (LP-FT). Here the probe is scikit-learn's multinomial
logistic regression on the backbone's globally pooled features of the training images, and its
coefficients become the `predictions` layer's kernel and bias; training then goes on from there.

With every stage frozen there is nothing to fine-tune but the head, and gradient training only
drifts from the probe's optimum (in benchmarks/transfer.py at 10 images per class, 500 steps
of head training ended 1-4 points below the probe itself, and worse with more steps): then the
head *is* the probe (`head_is_the_probe`), fitted once on every training image.
"""
from __future__ import annotations

import keras
import numpy as np

#: At most this many training images feed the probe (a forward pass each; a sample suffices).
PROBE_MAX_IMAGES = 2000


def head_is_the_probe(trainable_stages: int, images: int, pretrained: bool) -> bool:
    """True (bool) when the classifier's head is the linear probe itself, with no gradient training:
    pretrained weights, `trainable_stages` 0, and at most `PROBE_MAX_IMAGES` training `images`
    (all of them fit the probe; on more, the head trains by gradient from a probe on a sample)."""
    return bool(pretrained) and int(trainable_stages) == 0 and images <= PROBE_MAX_IMAGES


def pooled_features(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """float32 [N, D]: the classifier's `avg_pool` output (inference mode) for uint8 `images` [N, S, S, 3]."""
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    return np.concatenate([
        np.asarray(keras.ops.convert_to_numpy(features(images[i:i + batch_size], training=False)), np.float32)
        for i in range(0, len(images), batch_size)])


def probe_sample(images: np.ndarray, labels, seed: int = 0, limit: int = PROBE_MAX_IMAGES) -> tuple:
    """(images, labels): all of them, or `limit` drawn at random with `seed`."""
    labels = np.asarray(labels)
    if len(labels) <= limit:
        return images, labels
    index = np.sort(np.random.default_rng(seed).choice(len(labels), limit, replace=False))
    return images[index], labels[index]


def multilabel_head_from_probe(features: np.ndarray, labels: np.ndarray, balanced: bool = False) -> tuple:
    """(kernel [D, C], bias [C]) of one binary logistic regression per class (one-vs-rest) on
    `features`, for a sigmoid head; `labels` are multi-hot rows [N, C]. A class that every image has
    (or none has) gets a zero kernel and a bias of +10 (or -10). `balanced` (bool) weighs each
    class's positives and negatives equally (scikit-learn's class_weight="balanced")."""
    from sklearn.linear_model import LogisticRegression

    kernel = np.zeros((features.shape[1], labels.shape[1]), np.float32)
    bias = np.zeros(labels.shape[1], np.float32)
    for column in range(labels.shape[1]):
        target = labels[:, column] > 0.5
        if target.all() or not target.any():
            bias[column] = 10.0 if target.all() else -10.0
            continue
        probe = LogisticRegression(max_iter=2000, class_weight="balanced" if balanced else None)
        probe.fit(features, target)
        kernel[:, column], bias[column] = probe.coef_[0], probe.intercept_[0]
    return kernel, bias


def head_from_probe(features: np.ndarray, labels, num_classes: int, class_weight=None) -> tuple:
    """(kernel [D, num_classes], bias [num_classes]) of a logistic regression on `features`.

    Classes missing from `labels` get a zero weight row and a bias far below the others', so the
    head never predicts a class it has no image of until training says otherwise. Multi-hot
    `labels` [N, C] fit one regression per class (`multilabel_head_from_probe`); a `class_weight`
    (dict, or a list of positive weights for multi-label data) then balances each class.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels)
    if labels.ndim == 2:
        return multilabel_head_from_probe(features, labels, balanced=bool(class_weight))
    present = np.unique(labels)
    kernel = np.zeros((features.shape[1], num_classes), np.float32)
    bias = np.zeros(num_classes, np.float32)
    if len(present) < 2:
        return kernel, bias
    probe = LogisticRegression(max_iter=2000, class_weight=class_weight).fit(features, labels)
    coef, intercept = probe.coef_, probe.intercept_
    if len(present) == 2:  # scikit-learn keeps one row for two classes: logits [-z/2, z/2]
        coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    kernel[:, probe.classes_] = coef.T
    bias[probe.classes_] = intercept
    if len(present) < num_classes:
        bias[np.setdiff1d(np.arange(num_classes), present)] = float(intercept.min()) - 10.0
    return kernel, bias


def set_head(model: keras.Model, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Write `kernel` and `bias` into the classifier's `predictions` layer."""
    model.get_layer("predictions").set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


def initialise_head(model: keras.Model, images: np.ndarray, labels, *, class_weight: dict | None = None,
                    seed: int = 0, features: np.ndarray | None = None) -> np.ndarray:
    """Set the head of `model` to a linear probe on its pooled features; return those features.

    `features` (from an earlier call on the same images and backbone weights) skips the forward pass.
    """
    images, labels = probe_sample(images, labels, seed)
    if features is None:
        features = pooled_features(model, images)
    num_classes = int(model.get_layer("predictions").units)
    set_head(model, *head_from_probe(features, labels, num_classes, class_weight))
    return features
