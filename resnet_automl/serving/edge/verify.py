"""Check a LiteRT or ONNX export in a fresh process on the test split against the Keras model.

The fresh process runs `edge/runtime.py` as a script: NumPy and the format's runtime, nothing of
this process. It scores the test pixels and times batch-1 calls; this process compares its
probabilities with the Keras model's on the same pixels.

Pass criteria:
- float formats (`EdgeFormat.exact`): probabilities within `verify.TOLERANCE` of the Keras model's;
- quantised formats: test accuracy at most `INT8_MAX_DROP` below the Keras model's (or one image,
  on a test split under 100 images, where one image is more than a point); for a multi-label
  model the score is the test mAP instead of accuracy, and "top-1 agreement" compares the 0.5 decisions.
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

from resnet_automl.config.task import Task
from resnet_automl.serving.edge import runtime as edge_runtime
from resnet_automl.serving.edge.formats import EdgeFormat
from resnet_automl.serving.savedmodel.verify import TOLERANCE
from resnet_automl.training.metrics import validation_score

#: Largest accuracy drop (a fraction) a quantised format may show against the Keras model.
INT8_MAX_DROP = 0.01


def allowed_drop(images: int) -> float:
    """The accuracy drop a quantised format may show on `images` test images: 1 point, or one image."""
    return max(INT8_MAX_DROP, 1.0 / images) if images else INT8_MAX_DROP


def verify_edge_format(fmt: EdgeFormat, model_path, pixels: np.ndarray, labels: np.ndarray,
                       reference: np.ndarray, task: Task = Task.MULTICLASS, timeout: float = 600) -> dict:
    """Run `model_path` on `pixels` in a fresh process and judge it against `reference`.

    Args:
        fmt: the file's `EdgeFormat`.
        model_path: the .tflite or .onnx file.
        pixels: uint8 pixels [N, S, S, 3] of the test split.
        labels: int array [N], their labels (multi-hot float rows [N, C] for a multi-label `task`).
        reference: float array [N, C], the Keras model's probabilities on `pixels`.
        task: `Task`, which score judges a quantised file: accuracy or mAP. Defaults to MULTICLASS.

    Returns a dict (run.json, the report's Deployment table): format, file, size_mb, images,
    accuracy, reference_accuracy, max_abs_diff, top1_agreement, latency_ms (p50, p95 at batch 1),
    criterion, passed, seconds; `error` when the fresh process failed.
    """
    started = time.time()
    model_path = Path(model_path)
    row = {"format": fmt.name, "file": str(model_path), "size_mb": round(model_path.stat().st_size / 2**20, 3),
           "images": int(len(pixels)), "input_dtype": fmt.input_dtype}
    with tempfile.TemporaryDirectory() as tmp:
        inputs, output = os.path.join(tmp, "pixels.npy"), os.path.join(tmp, "out.npz")
        np.save(inputs, np.asarray(pixels, dtype=np.uint8))
        proc = subprocess.run([sys.executable, edge_runtime.__file__, str(model_path), inputs, output],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            return {**row, "passed": False, "error": lines[-1] if lines else "the check process failed",
                    "seconds": round(time.time() - started, 1)}
        with np.load(output) as result:
            served = result["probabilities"]
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    reference = np.asarray(reference, dtype=np.float32)
    metric = task.score_metric
    accuracy = validation_score(served, labels, metric) if len(labels) else 0.0
    reference_accuracy = validation_score(reference, labels, metric) if len(labels) else 0.0
    difference = float(np.max(np.abs(served - reference))) if len(labels) else 0.0
    if fmt.exact:
        passed, criterion = difference <= TOLERANCE, f"max |probability difference| <= {TOLERANCE:g}"
    else:
        drop = allowed_drop(len(labels))
        passed = accuracy >= reference_accuracy - drop - 1e-9
        score = task.score_name
        criterion = f"test {score} at most {100 * drop:.2g} points below the Keras model's"
    return {**row, "accuracy": round(accuracy, 4), "reference_accuracy": round(reference_accuracy, 4),
            "max_abs_diff": difference,
            "top1_agreement": _agreement(served, reference, metric) if len(labels) else 1.0,
            "latency_ms": info["latency_ms"], "criterion": criterion, "passed": bool(passed),
            "seconds": round(time.time() - started, 1)}


def _agreement(served: np.ndarray, reference: np.ndarray, metric: str) -> float:
    """Share of images whose top label (or, multi-label, every 0.5 decision) agrees between the two outputs."""
    if metric == "map":
        return round(float(np.mean(np.all((served >= 0.5) == (reference >= 0.5), axis=1))), 4)
    return round(float(np.mean(served.argmax(1) == reference.argmax(1))), 4)
