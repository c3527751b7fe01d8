"""Frozen-prefix feature cache shared by the search trials.

For a trial with `trainable_stages=k`, everything before the first trainable stage (resize,
normalisation and the frozen stages, in inference mode) is a pure function of the image. Its
output is computed once per (backbone, weights, image size, frozen depth, file list), stored as a
`.npy` file under `DIR/cache/` in a compact dtype (and kept in memory when it fits the limit), and
the trial trains only the trainable tail and the head on it. Trials and epochs with the same
prefix share the file; a resumed run reuses it. Memory stays bounded: batches are gathered from
the file (memory-mapped) when it does not fit. Backend-neutral (no TensorFlow).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np

from resnet_automl.backbones import STAGES, stage_of
from resnet_automl.config.options import IN_MEMORY_LIMIT_BYTES
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.modeling.assembly import backbone_of
from resnet_automl.runtime import interrupts
from resnet_automl.runtime.files import atomic_path

DEFAULT_MEMORY_LIMIT = IN_MEMORY_LIMIT_BYTES


def boundary_layer(backbone: keras.Model, frozen_stages: int) -> str:
    """Name of the last layer of stage `frozen_stages` (1 = conv1 ... 5 = conv5), or of the deepest
    stage before it when that one is empty (conv2 of the CIFAR-style nets)."""
    for stage in reversed(STAGES[:frozen_stages]):
        names = [layer.name for layer in backbone.layers if stage_of(layer.name) == stage]
        if names:
            return names[-1]
    raise ValueError(f"{backbone.name} has no layer in stages {STAGES[:frozen_stages]}")


def split_classifier(model: keras.Model, trainable_stages: int) -> tuple:
    """Split a classifier into (prefix, tail) at the first trainable stage.

    `prefix` maps pixels to the frozen features; `tail` maps those features to probabilities and
    shares its layers (and weights) with `model`, so training `tail` trains `model`.
    """
    frozen = len(STAGES) - trainable_stages
    backbone = backbone_of(model)
    boundary = backbone.get_layer(boundary_layer(backbone, frozen)).output
    backbone_prefix = keras.Model(backbone.input, boundary, name="frozen_prefix")
    x = model.get_layer("normalize")(model.get_layer("resize")(model.input))
    prefix = keras.Model(model.input, backbone_prefix(x), name="prefix")
    features = keras.Input(tuple(boundary.shape[1:]), name="features")
    y = features if trainable_stages == 0 else keras.Model(boundary, backbone.output, name="trainable_tail")(features)
    for name in ("avg_pool", "dropout", "predictions"):
        y = model.get_layer(name)(y)
    return prefix, keras.Model(features, y, name="tail")


class FeatureCache:
    """Frozen-prefix activations on disk (and in memory when small).

    Args:
        directory: folder for `.npy` files (`DIR/cache`), or None to keep everything in memory.
        memory_limit_bytes: int, total bytes of features kept in memory; beyond it arrays stay
            memory-mapped on disk. Defaults to 2 GiB.
        dtype: str, storage dtype. Defaults to "float16" (half the bytes; activations after
            BatchNorm/ReLU fit its range).
    """

    def __init__(self, directory=None, memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT, dtype: str = "float16"):
        self.directory = Path(directory) if directory is not None else None
        self.memory_limit_bytes = memory_limit_bytes
        self.dtype = np.dtype(dtype)
        self._arrays = {}
        self._bytes_in_memory = 0
        self.computed, self.reused = 0, 0

    @staticmethod
    def key(backbone: str, weights, image_size: int, frozen_stages: int, items: list) -> str:
        text = json.dumps([backbone, str(weights), image_size, frozen_stages, [str(p) for p, _ in items]])
        return hashlib.sha1(text.encode()).hexdigest()[:20]

    def features(self, key: str, prefix: keras.Model, images, batch_size: int):
        """The (N, ...) features of `images` (uint8 [N, S, S, 3]) in order: from memory, from disk, or computed now."""
        if key in self._arrays:
            self.reused += 1
            return self._arrays[key]
        path = self.directory / f"{key}.npy" if self.directory is not None else None
        if path is not None and path.exists():
            self.reused += 1
            array = np.load(path, mmap_mode="r")
        else:
            self.computed += 1
            array = self._compute(prefix, images, batch_size, path)
        if self._bytes_in_memory + array.nbytes <= self.memory_limit_bytes:
            array = np.array(array)  # read into memory
            self._bytes_in_memory += array.nbytes
        self._arrays[key] = array
        return array

    def _compute(self, prefix, images, batch_size, path):
        shape = (len(images), *prefix.output.shape[1:])
        if path is None:
            out = np.empty(shape, self.dtype)
            self._fill(out, prefix, images, batch_size)
            return out
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=shape)
            self._fill(out, prefix, images, batch_size)
            out.flush()
            del out
        return np.load(path, mmap_mode="r")

    def _fill(self, out: np.ndarray, prefix, images, batch_size: int) -> None:
        """Write the features of `images` through `prefix` into `out`, batch by batch."""
        for start in range(0, len(images), batch_size):
            interrupts.check()
            batch = np.asarray(images[start:start + batch_size])
            values = keras.ops.convert_to_numpy(prefix.predict_on_batch(batch))
            out[start:start + len(values)] = values.astype(self.dtype)


def feature_dataset(features, labels, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> ArrayBatches:
    """Batches of (float32 features, label), gathered by index so memory-mapped arrays stay on disk.

    Shuffling permutes indices exactly as the image batches of the same length and seed do, so a
    cached trial sees the same batches as the full model would.
    """
    return ArrayBatches(features, labels, batch_size, shuffle=shuffle, seed=seed, dtype=np.float32)
