"""Measurements on the device in use: batch-1 latency and a short training-throughput probe.

Probe results are cached per device in a JSON file (the run directory's probe.json), so a resumed
run does not pay for them again.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import keras
import numpy as np

from resnet_automl.errors import RunStateError
from resnet_automl.modeling.classifier import build_classifier, compile_classifier
from resnet_automl.runtime.device import describe
from resnet_automl.runtime.files import read_json_object, write_json_atomic


def measure_latency(model: keras.Model, image_size: int, *, runs: int = 10, warmup: int = 3,
                    batch32: bool = False) -> dict:
    """Median and 95th percentile batch-1 latency in ms (after warm-up runs) of `model`.

    With `batch32=True` also the mean ms per image at batch 32.
    """
    forward = model.predict_on_batch  # the backend's compiled inference step (tf.function, jax.jit, ...)
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, image_size, image_size, 3)).astype("float32")
    for _ in range(warmup):
        forward(one)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(forward(one))
        times.append((time.perf_counter() - start) * 1000.0)
    result = {"batch1_p50": round(float(np.percentile(times, 50)), 3),
              "batch1_p95": round(float(np.percentile(times, 95)), 3), "runs": runs}
    if batch32:
        many = rng.uniform(0, 255, (32, image_size, image_size, 3)).astype("float32")
        forward(many)
        start = time.perf_counter()
        keras.ops.convert_to_numpy(forward(many))
        result["batch32_ms_per_image"] = round((time.perf_counter() - start) * 1000.0 / 32, 3)
    return result


class ProbeCache:
    """A JSON file of measurements keyed by device and setting; a damaged one stops with
    `RunStateError` naming it (delete it: the probes run again)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.data = {}
        if self.path and self.path.exists():
            self.data = read_json_object(self.path, what="the backbone probe cache",
                                         fix="Delete it (the probes run again) or rerun with --overwrite.")
            if not all(isinstance(v, dict) for v in self.data.values()):
                raise RunStateError(f"The backbone probe cache {str(self.path)!r} is damaged: an entry is not "
                                    "an object of measurements. Delete it (the probes run again) or rerun with "
                                    "--overwrite.")
        self.hits = 0

    def get_or_measure(self, key: str, measure) -> dict:
        full_key = f"{describe()}|{key}"
        if full_key in self.data:
            self.hits += 1
            return {**self.data[full_key], "cached": True}
        value = measure()
        self.data[full_key] = value
        if self.path:
            write_json_atomic(self.path, self.data, indent=1)
        return {**value, "cached": False}


def probe_training(backbone: str, *, image_size: int, trainable_stages: int, batch_size: int,
                   steps: int = 3, augment: bool = False) -> dict:
    """Time training steps of a fresh classifier on random data (behind the augmentation layers
    when `augment`, as trials and the final training from random initialisation run).

    Returns {"first_step_s": build + trace + first step, "images_per_s": after warm-up}.
    """
    model = build_classifier(backbone, 2, image_size=image_size, trainable_stages=trainable_stages)
    if augment:
        from resnet_automl.modeling.augmentation import with_augmentation

        model = with_augmentation(model)
    compile_classifier(model, 1e-3, 100)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, 2, batch_size)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    per_step = (time.perf_counter() - start) / steps
    keras.backend.clear_session()
    return {"first_step_s": round(first, 3), "images_per_s": round(batch_size / per_step, 2)}


def latency_of(backbone: str, *, image_size: int) -> dict:
    """Batch-1 latency of a fresh classifier (random weights: latency does not depend on them)."""
    model = build_classifier(backbone, 2, image_size=image_size, trainable_stages=0)
    result = measure_latency(model, image_size)
    keras.backend.clear_session()
    return result
