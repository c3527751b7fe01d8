"""Check an exported SavedModel in a fresh Python process against the in-memory model.

The fresh process imports only TensorFlow and NumPy (not this package), loads the SavedModel with
`tf.saved_model.load` and calls `serving_default` on raw image bytes, as TF Serving would. It also
returns the pixels its graph decoded and resized, so the in-memory model (on any Keras backend,
without TensorFlow in this process) is scored on exactly the same input.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from resnet_automl.serving.savedmodel.layout import SIGNATURE_BYTES, SIGNATURE_TENSOR
from resnet_automl.serving.savedmodel.tensorflow_process import tensorflow_env

TOLERANCE = 1e-4

_FRESH_PROCESS = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
model_dir, inputs, output, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
loaded = tf.saved_model.load(model_dir)
usable, pixels = [], []
for data in np.load(inputs, allow_pickle=True):
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    except tf.errors.InvalidArgumentError:
        continue
    usable.append(data)
    pixels.append(tf.image.resize(tf.cast(image, tf.float32), [size, size]).numpy())
result = loaded.signatures["serving_default"](image_bytes=tf.constant(usable)) if usable else None
np.savez(output, probabilities=result["probabilities"].numpy() if usable else np.zeros((0, 0), np.float32),
         pixels=np.stack(pixels) if pixels else np.zeros((0, size, size, 3), np.float32))
times = []
for index in range(23 if usable else 0):  # batch 1, as a client sends one image; 3 warm-up calls
    start = time.perf_counter()
    loaded.signatures["serving_default"](image_bytes=tf.constant(usable[:1]))
    times.append((time.perf_counter() - start) * 1000.0)
latency = {"p50": round(float(np.percentile(times[3:], 50)), 3),
           "p95": round(float(np.percentile(times[3:], 95)), 3)} if usable else None
print(json.dumps({"signatures": sorted(loaded.signatures.keys()), "latency_ms": latency,
                  "outputs": sorted(result.keys()) if usable else [],
                  "classes": [c.decode("utf-8") for c in result["classes"].numpy()] if usable and "classes" in result
                  else []}))
"""


def verify_export(version_dir, predict, image_paths: list, image_size: int, timeout: float = 600) -> dict:
    """Compare `serving_default` in a fresh process with the in-memory model on `image_paths`.

    Args:
        version_dir: the exported version folder.
        predict: callable mapping float32 pixels [N, S, S, 3] (0..255) to probabilities [N, C]
            (e.g. `model.predict`), on any Keras backend.
        image_paths: files to serve; those TensorFlow cannot decode are left out.
        image_size: int, the side the serving graph resizes to.

    Returns a dict (goes into run.json and the report): passed, max_abs_diff, tolerance, images,
    signatures, outputs (names of `serving_default`'s outputs), latency_ms (p50, p95 of
    `serving_default` at batch 1), seconds; `error` when the fresh process failed.
    """
    start = time.time()
    encoded = [Path(p).read_bytes() for p in image_paths]
    with tempfile.TemporaryDirectory() as tmp:
        inputs, output = os.path.join(tmp, "inputs.npy"), os.path.join(tmp, "out.npz")
        np.save(inputs, np.array(encoded, dtype=object), allow_pickle=True)
        proc = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(version_dir), inputs, output,
                               str(image_size)], capture_output=True, text=True, timeout=timeout,
                              env=tensorflow_env())
        if proc.returncode != 0:
            return {"passed": False, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"],
                    "images": len(encoded), "seconds": round(time.time() - start, 1)}
        with np.load(output) as result:
            served, pixels = result["probabilities"], result["pixels"]
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    if len(pixels):
        expected = np.asarray(predict(pixels), dtype=np.float32)
        difference = float(np.max(np.abs(served - expected)))
    else:
        difference = 0.0
    return {"passed": bool(difference <= TOLERANCE and {SIGNATURE_BYTES, SIGNATURE_TENSOR} <= set(info["signatures"])),
            "max_abs_diff": difference, "tolerance": TOLERANCE, "images": int(len(pixels)),
            "signatures": info["signatures"], "outputs": info.get("outputs"), "version_dir": str(version_dir),
            "latency_ms": info.get("latency_ms"),
            "seconds": round(time.time() - start, 1)}
