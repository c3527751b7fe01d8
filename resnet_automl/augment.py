"""Training augmentation as Keras layers that run on the device, inside the training step.

The classifier itself stays augmentation-free (it is what gets exported); `with_augmentation`
wraps it for the final training only: pixels -> flip, rotation, zoom, shift -> classifier, all
layers shared, so training the wrapper trains the classifier.
"""
from __future__ import annotations

import keras


def make_augmenter(seed: int = 0) -> keras.Sequential:
    """Flip, small rotation, zoom and shift (reflect padding); active only when training."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
        keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=seed),
        keras.layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=seed),
    ], name="augmentation")


def with_augmentation(classifier: keras.Model, seed: int = 0) -> keras.Model:
    """A model that augments its input pixels, then runs `classifier` (whose layers it shares)."""
    inputs = keras.Input(classifier.input_shape[1:], name="pixels")
    outputs = classifier(make_augmenter(seed)(inputs))
    return keras.Model(inputs, outputs, name=f"{classifier.name}_augmented")
