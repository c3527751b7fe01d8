"""The TF Serving folder layout and signature names: what the exporter writes and readers expect.

No TensorFlow here, so the training side (any Keras backend) can name versions and labels.

    DIR/model/<version>/saved_model.pb, variables/, assets/labels.txt,
    DIR/model/<version>/assets.extra/tf_serving_warmup_requests
    DIR/model/models.config
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

from resnet_automl.runtime import run_folder

SIGNATURE_BYTES = "serving_default"
SIGNATURE_TENSOR = "serving_tensor"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
LABELS_FILE = Path("assets") / run_folder.LABELS_FILE
#: A multi-label model's decision threshold per label (JSON {label: threshold}, in label order).
THRESHOLDS_FILE = Path("assets") / run_folder.THRESHOLDS_FILE


def next_version(model_root: Path) -> int:
    """1 + the highest integer version folder under `model_root` (1 when there is none)."""
    versions = [int(p.name) for p in model_root.iterdir() if p.is_dir() and p.name.isdigit()] \
        if model_root.exists() else []
    return max(versions, default=0) + 1


#: Where TF Serving's container image looks for models (`MODEL_BASE_PATH`): a model NAME at /models/NAME.
CONTAINER_MODELS_ROOT = "/models"


def container_base_path(name: str) -> str:
    """The model folder's path inside the `tensorflow/serving` container when DIR/model is mounted at
    /models/<name> (the image's own convention), e.g. "/models/flowers"."""
    return f"{CONTAINER_MODELS_ROOT}/{name}"


def models_config_text(name: str) -> str:
    """TF Serving `ModelServerConfig` (text protobuf) for one model, with the container's base path
    (`container_base_path`): valid inside `docker run -v DIR/model:/models/<name> tensorflow/serving`
    on any host, which an absolute host path is not."""
    return ("model_config_list {\n  config {\n"
            f"    name: \"{name}\"\n    base_path: \"{container_base_path(name)}\"\n"
            "    model_platform: \"tensorflow\"\n  }\n}\n")


def clean_partial_exports(model_root: str | os.PathLike) -> int:
    """Remove staging folders left by an export that was killed; return how many were removed."""
    model_root = Path(model_root)
    removed = 0
    for path in model_root.glob(".tmp-*") if model_root.exists() else []:
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def read_labels(version_dir: str | os.PathLike) -> list:
    """Labels of an exported model, from `assets/labels.txt`."""
    return Path(version_dir, LABELS_FILE).read_text(encoding="utf-8").splitlines()


def read_thresholds(folder: str | os.PathLike, name: str | os.PathLike = THRESHOLDS_FILE) -> list | None:
    """A multi-label model's per-label thresholds (list of float, label order) from `folder/name`, or
    None for a single-label model (no such file)."""
    import json

    path = Path(folder, name)
    return list(json.loads(path.read_text(encoding="utf-8")).values()) if path.exists() else None


def write_thresholds(path: str | os.PathLike, class_names: list, thresholds: list) -> None:
    """Write a multi-label model's per-label `thresholds` as JSON {label: threshold} (label order) to `path`."""
    import json

    Path(path).write_text(json.dumps({str(n): float(t) for n, t in zip(class_names, thresholds, strict=True)},
                                     indent=1), encoding="utf-8")


def is_version_dir(path: Path) -> bool:
    return path.is_dir() and bool(re.fullmatch(r"\d+", path.name)) and (path / "saved_model.pb").exists()


def as_numpy_bytes(paths: list) -> np.ndarray:
    """An object array of the raw bytes of `paths` (what `saved_model_cli --inputs` accepts)."""
    return np.array([Path(p).read_bytes() for p in paths], dtype=object)
