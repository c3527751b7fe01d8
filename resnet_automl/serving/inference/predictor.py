"""`load_model`: a predictor over an exported SavedModel (file paths, bytes or pixel arrays)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from resnet_automl.errors import DataError, ExportError
from resnet_automl.serving.edge.formats import EDGE_FORMATS, require_modules
from resnet_automl.serving.inference.ranking import predictions
from resnet_automl.serving.savedmodel.layout import (
    SIGNATURE_BYTES,
    SIGNATURE_TENSOR,
    is_version_dir,
    read_labels,
    read_thresholds,
)


def resolve_version_dir(path: str | os.PathLike) -> Path:
    """Accept a version folder, a model base folder (`DIR/model`) or a run folder (`DIR`)."""
    path = Path(path).expanduser()
    if is_version_dir(path):
        return path
    for base in (path, path / "model"):
        if base.is_dir():
            versions = sorted((p for p in base.iterdir() if is_version_dir(p)), key=lambda p: int(p.name))
            if versions:
                return versions[-1]
    raise ExportError(f"No exported model found at {str(path)!r}. Pass a run folder (DIR), its model "
                      "folder (DIR/model) or a version folder (DIR/model/1) written by `resnet-automl fit`.")


class Predictor:
    """Classify images with an exported model.

    Attributes:
        version_dir: Path of the SavedModel version folder.
        class_names: list of str.
        thresholds: list of float (a multi-label model's per-label thresholds), or None.
    """

    def __init__(self, version_dir: Path):
        from resnet_automl.runtime.quiet import filtered_native_stderr

        with filtered_native_stderr():
            import tensorflow as tf

        self._tf = tf
        self.version_dir = version_dir
        self.class_names = read_labels(version_dir)
        self.thresholds = read_thresholds(version_dir)
        self._loaded = tf.saved_model.load(str(version_dir))
        self._bytes_fn = self._loaded.signatures[SIGNATURE_BYTES]
        self._tensor_fn = self._loaded.signatures[SIGNATURE_TENSOR]

    def probabilities(self, images) -> np.ndarray:
        """Probabilities [N, C] for a list of paths / bytes, or a float array [N, H, W, 3] 0..255."""
        tf = self._tf
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return self._tensor_fn(pixels=tf.constant(images, tf.float32))["probabilities"].numpy()
        if isinstance(images, (str, bytes, os.PathLike, np.ndarray)):
            images = [images]
        encoded, names = [], []
        for item in images:
            if isinstance(item, np.ndarray):
                return np.concatenate([self.probabilities(item[None] if item.ndim == 3 else item)
                                       for item in images])
            if isinstance(item, bytes):
                encoded.append(item)
                names.append("<bytes>")
                continue
            path = Path(item)
            if not path.is_file():
                raise DataError(f"Image file {str(path)!r} does not exist.")
            encoded.append(path.read_bytes())
            names.append(str(path))
        try:
            return self._bytes_fn(image_bytes=tf.constant(encoded))["probabilities"].numpy()
        except tf.errors.InvalidArgumentError:
            bad = [name for name, data in zip(names, encoded, strict=True) if not _decodes(tf, data)]
            raise DataError(f"Could not decode {bad or names} as JPEG, PNG, GIF or BMP. Remove or re-save "
                            "the file(s) (e.g. with an image editor) and try again.") from None

    def decodes(self, data: bytes) -> bool:
        """True when the serving graph can decode `data` (bytes of an encoded image)."""
        return _decodes(self._tf, data)

    def predict(self, images, top_k: int = 1) -> list:
        """Per image: {"labels": top-k labels (a multi-label model: every label at or above its threshold),
        "scores": their probabilities, "probabilities": all}."""
        return predictions(self.probabilities(images), self.class_names, top_k, self.thresholds)


def _decodes(tf, data: bytes) -> bool:
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
        return True
    except tf.errors.InvalidArgumentError:
        return False


#: Endings of the LiteRT and ONNX model files (`formats.EDGE_FORMATS`).
EDGE_SUFFIXES = tuple(sorted({Path(fmt.file).suffix for fmt in EDGE_FORMATS.values()}))


def _edge_model_file(path: Path) -> Path | None:
    """The .tflite/.onnx file `path` names: the file itself, or the one file in a `DIR/exports/<format>` folder."""
    if path.is_file() and path.suffix in EDGE_SUFFIXES:
        return path
    if path.is_dir() and not is_version_dir(path):
        files = [p for p in path.iterdir() if p.suffix in EDGE_SUFFIXES]
        return files[0] if len(files) == 1 else None
    return None


def load_model(path: str | os.PathLike):
    """Load an exported model for prediction: a `Predictor` (SavedModel) or an `EdgePredictor` (LiteRT, ONNX).

    Args:
        path: a run folder, its `model/` folder (latest version is used), one version folder, a
            .tflite or .onnx file written by `resnet-automl export --format`, or its `DIR/exports/<format>` folder.

    Example:
        >>> predictor = load_model("runs/photos")
        >>> predictor.predict(["cat.jpg"], top_k=2)
    """
    edge_file = _edge_model_file(Path(path).expanduser())
    if edge_file is not None:
        from resnet_automl.serving.inference.edge_predictor import EdgePredictor

        require_modules([EDGE_FORMATS["onnx" if edge_file.suffix == ".onnx" else "litert"]], converters=False)
        return EdgePredictor(edge_file)
    return Predictor(resolve_version_dir(path))
