"""`load_model`: a predictor over an exported SavedModel (file paths, bytes or pixel arrays)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from resnet_automl.errors import DataError, ExportError
from resnet_automl.serving.layout import SIGNATURE_BYTES, SIGNATURE_TENSOR, is_version_dir, read_labels


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
    """

    def __init__(self, version_dir: Path):
        from resnet_automl.runtime.console import filtered_native_stderr

        with filtered_native_stderr():
            import tensorflow as tf

        self._tf = tf
        self.version_dir = version_dir
        self.class_names = read_labels(version_dir)
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
        """Per image: {"labels": top-k labels, "scores": their probabilities, "probabilities": all}."""
        probabilities = self.probabilities(images)
        k = max(1, min(int(top_k), len(self.class_names)))
        results = []
        for row in probabilities:
            order = np.argsort(-row)[:k]
            results.append({"labels": [self.class_names[i] for i in order],
                            "scores": [float(row[i]) for i in order],
                            "probabilities": {name: float(p) for name, p in zip(self.class_names, row, strict=True)}})
        return results


def _decodes(tf, data: bytes) -> bool:
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
        return True
    except tf.errors.InvalidArgumentError:
        return False


def load_model(path: str | os.PathLike) -> Predictor:
    """Load an exported model for prediction.

    Args:
        path: a run folder, its `model/` folder (latest version is used) or one version folder.

    Example:
        >>> predictor = load_model("runs/photos")
        >>> predictor.predict(["cat.jpg"], top_k=2)
    """
    return Predictor(resolve_version_dir(path))
