"""Linear-probe head initialisation (LP-FT): the head equals a logistic regression on the pooled
features, so before any training the classifier predicts what the probe predicts."""
from __future__ import annotations

import numpy as np

from resnet_automl.modeling.classifier import build_classifier
from resnet_automl.modeling.head import head_from_probe, initialise_head, pooled_features, probe_sample


def _images(rng, n, size=32):
    """Bright top halves for class 1, bright bottom halves for class 0, plus noise."""
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    for i, label in enumerate(labels):
        rows = slice(0, size // 2) if label else slice(size // 2, size)
        images[i, rows] += 150
    return images, labels


def test_head_starts_as_the_probe_and_separates_the_classes():
    rng = np.random.default_rng(0)
    images, labels = _images(rng, 40)
    model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=0, dropout=0.0)
    features = initialise_head(model, images, labels)
    after = np.argmax(model.predict(images, verbose=0), axis=1)
    assert features.shape == (40, pooled_features(model, images[:2]).shape[1])
    assert np.mean(after == labels) >= 0.9  # random filters, pooled: still linearly separable
    assert 2 not in after  # the class without images is never predicted


def test_two_class_probe_gives_matching_softmax_logits():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(30, 5)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    kernel, bias = head_from_probe(features, labels, 2)
    from sklearn.linear_model import LogisticRegression

    reference = LogisticRegression(max_iter=2000).fit(features, labels).predict_proba(features)[:, 1]
    logits = features @ kernel + bias
    ours = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_probe_sample_caps_and_is_reproducible():
    images, labels = np.arange(50)[:, None], np.arange(50) % 2
    first, second = probe_sample(images, labels, seed=3, limit=10), probe_sample(images, labels, seed=3, limit=10)
    assert len(first[1]) == 10 and np.array_equal(first[0], second[0])
    assert probe_sample(images, labels, limit=100)[0] is images
