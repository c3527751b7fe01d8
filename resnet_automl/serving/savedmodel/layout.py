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

from resnet_automl.errors import RunStateError
from resnet_automl.runtime import run_folder
from resnet_automl.runtime.files import read_json_object

SIGNATURE_BYTES = "serving_default"
SIGNATURE_TENSOR = "serving_tensor"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
#: What a version was made from (JSON {"weights_sha256": ...}), written before the version is renamed into
#: place, so a rerun that finds a version its run never recorded (killed in between) adopts it.
PROVENANCE_FILE = Path("assets.extra") / "resnet_automl.json"
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
    None for a single-label model (no such file); `RunStateError` naming a damaged file."""
    path = Path(folder, name)
    if not path.exists():
        return None
    fix = "Copy the model folder again from the run, or export it again (`resnet-automl export RUN_DIR`)."
    values = list(read_json_object(path, what="the decision thresholds", fix=fix).values())
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise RunStateError(f"The decision thresholds {str(path)!r} are damaged: each label needs a number. {fix}")
    return [float(v) for v in values]


def write_thresholds(path: str | os.PathLike, class_names: list, thresholds: list) -> None:
    """Write a multi-label model's per-label `thresholds` as JSON {label: threshold} (label order) to `path`."""
    import json

    Path(path).write_text(json.dumps({str(n): float(t) for n, t in zip(class_names, thresholds, strict=True)},
                                     indent=1), encoding="utf-8")


def write_provenance(version_dir, weights_sha256: str) -> None:
    """Record in `version_dir` (a staging folder, before the rename) the sha256 of the weights it was made from."""
    import json

    path = Path(version_dir, PROVENANCE_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"weights_sha256": weights_sha256}), encoding="utf-8")


def versions_made_from(model_root, weights_sha256: str) -> list:
    """The complete version folders under `model_root` made from the weights with `weights_sha256`,
    oldest first (an unreadable provenance file counts as another model's)."""
    import json

    found = []
    for path in Path(model_root).iterdir() if Path(model_root).exists() else []:
        if not is_version_dir(path) or not (path / PROVENANCE_FILE).exists():
            continue
        try:
            made_from = json.loads((path / PROVENANCE_FILE).read_text(encoding="utf-8")).get("weights_sha256")
        except (OSError, ValueError, AttributeError):
            continue
        if made_from == weights_sha256:
            found.append(path)
    return sorted(found, key=lambda p: int(p.name))


def is_version_dir(path: Path) -> bool:
    return path.is_dir() and bool(re.fullmatch(r"\d+", path.name)) and (path / "saved_model.pb").exists()


def as_numpy_bytes(paths: list) -> np.ndarray:
    """An object array of the raw bytes of `paths` (what `saved_model_cli --inputs` accepts)."""
    return np.array([Path(p).read_bytes() for p in paths], dtype=object)
