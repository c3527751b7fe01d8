"""`tf.data` input pipelines that stream images from disk, and the training augmentation."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .images import load_rgb


def _decode(path):
    return load_rgb(path)


def decode_and_resize(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode one file with Pillow and resize it with `tf.image.resize` (bilinear) to float32."""
    image = tf.numpy_function(_decode, [path], tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size])


def make_augmenter(seed: int = 0) -> keras.Sequential:
    """Training augmentation as Keras preprocessing layers: flip, small rotation, zoom, shift."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
        keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=seed),
        keras.layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=seed),
    ], name="augmentation")


def make_dataset(items: list, image_size: int, batch_size: int, *, shuffle: bool = False,
                 augment: bool = False, cache: bool | str = False, seed: int = 0,
                 repeat: bool = False) -> tf.data.Dataset:
    """Build a batched, prefetched dataset of (float32 pixels 0..255, int label) from file paths.

    Args:
        items: list of (path, label index).
        image_size: int, square side in pixels the images are resized to.
        batch_size: int, images per batch.
        shuffle: bool, reshuffle every epoch (seeded). Defaults to False.
        augment: bool, apply `make_augmenter` to training batches. Defaults to False.
        cache: False (stream from disk every epoch), True (cache decoded images in memory) or a
            file path prefix (cache on disk). Defaults to False.
        seed: int, shuffle and augmentation seed. Defaults to 0.
        repeat: bool, repeat forever (for step-based loops). Defaults to False.
    """
    paths = np.array([str(p) for p, _ in items], dtype=object)
    labels = np.array([int(label) for _, label in items], dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths.astype(str), labels))
    ds = ds.map(lambda p, y: (decode_and_resize(p, image_size), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
    if shuffle:
        ds = ds.shuffle(max(len(items), 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    if augment:
        augmenter = make_augmenter(seed)
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
