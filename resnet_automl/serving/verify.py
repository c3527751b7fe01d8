"""Check an exported SavedModel in a fresh Python process against the in-memory model.

The fresh process imports only TensorFlow and NumPy (not this package), loads the SavedModel with
`tf.saved_model.load` and calls `serving_default` on raw image bytes, as TF Serving would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from .export import SIGNATURE_BYTES, SIGNATURE_TENSOR, decode_image_bytes

TOLERANCE = 1e-4

_FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
model_dir, inputs, output = sys.argv[1:4]
loaded = tf.saved_model.load(model_dir)
data = np.load(inputs, allow_pickle=True)
result = loaded.signatures["serving_default"](image_bytes=tf.constant(list(data)))
np.save(output, result["probabilities"].numpy())
print(json.dumps({"signatures": sorted(loaded.signatures.keys()),
                  "classes": [c.decode("utf-8") for c in result["classes"].numpy()]}))
"""


def in_memory_probabilities(model, encoded: list, image_size: int) -> np.ndarray:
    """Probabilities of the in-memory model on encoded images decoded exactly as the export does."""
    images = tf.stack([decode_image_bytes(tf.constant(data), image_size) for data in encoded])
    return np.asarray(model(images, training=False), dtype=np.float32)


def verify_export(version_dir, model, image_paths: list, image_size: int, timeout: float = 600) -> dict:
    """Compare `serving_default` in a fresh process with `model` on `image_paths`.

    Returns a dict (goes into run.json and the report): passed, max_abs_diff, tolerance, images,
    signatures, seconds; `error` when the fresh process failed.
    """
    import time

    start = time.time()
    encoded = [Path(p).read_bytes() for p in image_paths]
    expected = in_memory_probabilities(model, encoded, image_size)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, output = os.path.join(tmp, "inputs.npy"), os.path.join(tmp, "out.npy")
        np.save(inputs, np.array(encoded, dtype=object), allow_pickle=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(version_dir), inputs, output],
                              capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0:
            return {"passed": False, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"],
                    "images": len(encoded), "seconds": round(time.time() - start, 1)}
        served = np.load(output)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    difference = float(np.max(np.abs(served - expected))) if len(encoded) else 0.0
    return {"passed": bool(difference <= TOLERANCE and {SIGNATURE_BYTES, SIGNATURE_TENSOR} <= set(info["signatures"])),
            "max_abs_diff": difference, "tolerance": TOLERANCE, "images": len(encoded),
            "signatures": info["signatures"], "version_dir": str(version_dir),
            "seconds": round(time.time() - start, 1)}
