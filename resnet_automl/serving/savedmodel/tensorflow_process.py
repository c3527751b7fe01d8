"""TensorFlow in a child process, for a parent on another Keras backend (which never imports it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from resnet_automl.errors import ExportError


def tensorflow_env() -> dict:
    """Environment of a TensorFlow child process: the TF backend, C++ logs silenced."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}


def child_failure(stderr: str) -> str:
    """The one-sentence cause of a failed Python child process: its traceback's last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "it printed nothing"


def export_in_tensorflow_process(weights_path, model_root, *, model_name: str = "classifier",
                                 warmup_paths: list = (), log_path=None, timeout: float = 1800,
                                 formats: list = (), calibration=None) -> tuple[Path, dict]:
    """`export_from_weights_file` in a child process on Keras' TensorFlow backend, and with `formats`
    the LiteRT/ONNX files from the same rebuilt model (`edge.export.write_formats`).

    For models trained on another backend (JAX): this process then never imports TensorFlow.

    Args:
        weights_path: the classifier's `.weights.h5` file (with its description).
        model_root: the TF Serving base path (`DIR/model`).
        model_name: str, the name in models.config and the warm-up requests. Defaults to "classifier".
        warmup_paths: image files for the warm-up requests. Defaults to none.
        log_path: Path or None, where the child's output is kept when it fails. Defaults to None.
        timeout: float, seconds the child may take. Defaults to 1800.
        formats: format names to write as well (see `formats.EDGE_FORMATS`), under the run directory
            that holds `model_root` (`DIR/exports/<format>/`). Defaults to none.
        calibration: uint8 training pixels [N, S, S, 3] for "litert-int8", or None. Defaults to None.

    Returns (the version folder, format name -> written file). Raises `ExportError` with the cause in
    one sentence (the child's traceback is in `log_path` and in the error's `details`).
    """
    with tempfile.TemporaryDirectory() as tmp:
        command = ["resnet_automl.serving.savedmodel.export", str(weights_path), str(model_root),
                   "--model-name", model_name, *[arg for path in warmup_paths for arg in ("--warmup", str(path))]]
        if formats:
            command += ["--formats", ",".join(formats), "--run-dir", str(Path(model_root).parent)]
            command += _calibration_arguments(calibration, Path(tmp))
        result = run_tensorflow_child(command, f"writes the SavedModel from {weights_path}", log_path, timeout)
    return Path(result["version_dir"]), result.get("written", {})


def _calibration_arguments(calibration, folder: Path) -> list:
    if calibration is None:
        return []
    np.save(folder / "calibration.npy", calibration)
    return ["--calibration", str(folder / "calibration.npy")]


def formats_in_tensorflow_process(weights_path, run_dir, formats, *, calibration=None, log_path=None,
                                  timeout: float = 1800) -> dict:
    """`edge.export.formats_from_weights_file` in a child process on Keras' TensorFlow backend.

    Args:
        weights_path: the classifier's `.weights.h5` file (with its description).
        run_dir: the run directory (files go to `DIR/exports/<format>/`).
        formats: format names (see `formats.EDGE_FORMATS`).
        calibration: uint8 training pixels [N, S, S, 3] for "litert-int8", or None. Defaults to None.
        log_path: Path or None, where the child's output is kept when it fails. Defaults to None.
        timeout: float, seconds the child may take. Defaults to 1800.

    Returns format name -> written file path; raises `ExportError` like `export_in_tensorflow_process`.
    """
    with tempfile.TemporaryDirectory() as tmp:
        command = ["resnet_automl.serving.edge.export", str(weights_path), str(run_dir), "--formats", ",".join(formats),
                   *_calibration_arguments(calibration, Path(tmp))]
        result = run_tensorflow_child(command, f"writes the {', '.join(formats)} files from {weights_path}",
                                      log_path, timeout)
    return result["written"]


def run_tensorflow_child(module_args: list, what: str, log_path, timeout: float) -> dict:
    """Run `python -m <module_args>` on the TensorFlow backend; return the JSON of its last stdout line.

    Raises `ExportError` naming `what` the child did and its traceback's last line (the full output
    in `log_path` and in the error's `details`).
    """
    proc = subprocess.run([sys.executable, "-m", *module_args], capture_output=True, text=True, timeout=timeout,
                          env=tensorflow_env())
    if proc.returncode != 0:
        where = ""
        if log_path is not None:
            log_path = Path(log_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(proc.stdout + proc.stderr, encoding="utf-8")
            where = f" Its full output is in {log_path}."
        error = ExportError(f"The TensorFlow process that {what} failed: {child_failure(proc.stderr)}.{where} "
                            "Rerun the same command to retry the export (add --debug to see the child's traceback).")
        error.details = proc.stderr
        raise error
    return json.loads(proc.stdout.strip().splitlines()[-1])
