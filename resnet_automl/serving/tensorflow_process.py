"""TensorFlow in a child process, for a parent on another Keras backend (which never imports it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from resnet_automl.errors import ExportError


def tensorflow_env() -> dict:
    """Environment of a TensorFlow child process: the TF backend, C++ logs silenced."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}


def export_in_tensorflow_process(weights_path, model_root, *, model_name: str = "classifier",
                                 warmup_paths: list = (), timeout: float = 1800) -> Path:
    """`export_from_weights_file` in a child process on Keras' TensorFlow backend.

    For models trained on another backend (JAX): this process then never imports TensorFlow.
    Raises `ExportError` with the child's last lines when it fails.
    """
    command = [sys.executable, "-m", "resnet_automl.serving.export", str(weights_path), str(model_root),
               "--model-name", model_name, *[arg for path in warmup_paths for arg in ("--warmup", str(path))]]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=tensorflow_env())
    if proc.returncode != 0:
        last = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise ExportError(f"Exporting {weights_path} with TensorFlow failed:\n{last}")
    return Path(json.loads(proc.stdout.strip().splitlines()[-1])["version_dir"])
