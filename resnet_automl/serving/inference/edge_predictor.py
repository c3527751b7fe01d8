"""A predictor over a LiteRT (.tflite) or ONNX (.onnx) export, with the same interface as `Predictor`.

Images are decoded and resized by the package's own decoder (`data.arrays.decode_resized`, the
pixels the model was trained on) and fed to the file's runtime (`edge.runtime.EdgeRunner`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from resnet_automl.data.arrays import decode_resized, resize_bilinear
from resnet_automl.data.images import ImageTooLargeError
from resnet_automl.errors import DataError
from resnet_automl.runtime.run_folder import LABELS_FILE, THRESHOLDS_FILE
from resnet_automl.serving.inference.ranking import predictions
from resnet_automl.serving.savedmodel.layout import read_thresholds

#: What a file that does not decode raises in Pillow and the package's decoder.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ImageTooLargeError, ValueError)


class EdgePredictor:
    """Classify images with a .tflite or .onnx file written by `resnet-automl export --format`.

    Attributes:
        version_dir: Path of the folder holding the model file (its `labels.txt` beside it).
        model_path: Path of the model file.
        class_names: list of str.
    """

    def __init__(self, model_path):
        from resnet_automl.serving.edge.runtime import EdgeRunner

        self.model_path = Path(model_path)
        self.version_dir = self.model_path.parent
        labels = self.version_dir / LABELS_FILE
        if not labels.is_file():
            raise DataError(f"{labels} is missing: {self.model_path} needs the {LABELS_FILE} written beside it by "
                            "`resnet-automl export`. Copy the whole folder, not the model file alone.")
        self.class_names = labels.read_text(encoding="utf-8").splitlines()
        self.thresholds = read_thresholds(self.version_dir, THRESHOLDS_FILE)
        self._runner = EdgeRunner(self.model_path)
        self.image_size = self._runner.image_size

    def _pixels(self, item) -> np.ndarray:
        if isinstance(item, np.ndarray):
            if item.shape[:2] == (self.image_size, self.image_size):
                return item
            return resize_bilinear(np.asarray(item, np.float32), self.image_size)
        source = io.BytesIO(item) if isinstance(item, bytes) else Path(item)
        if isinstance(source, Path) and not source.is_file():
            raise DataError(f"Image file {str(source)!r} does not exist.")
        return decode_resized(source, self.image_size)

    def probabilities(self, images) -> np.ndarray:
        """Probabilities [N, C] for a list of paths / bytes, or an array [N, H, W, 3] of pixels 0..255."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        elif isinstance(images, (str, bytes, os.PathLike, np.ndarray)):
            images = [images]
        pixels, bad = [], []
        for index, item in enumerate(images):
            try:
                pixels.append(self._pixels(item))
            except _DECODE_ERRORS:
                bad.append("<bytes>" if isinstance(item, bytes) else str(item) if not isinstance(item, np.ndarray)
                           else f"<array {index}>")
        if bad:
            raise DataError(f"Could not decode {bad} as an image. Remove or re-save the file(s) (e.g. with an "
                            "image editor) and try again.")
        if not pixels:
            return np.zeros((0, len(self.class_names)), np.float32)
        return self._runner.probabilities(np.stack(pixels))

    def decodes(self, data: bytes) -> bool:
        """True when `data` (bytes of an encoded image) decodes."""
        try:
            decode_resized(io.BytesIO(data), self.image_size)
            return True
        except _DECODE_ERRORS:
            return False

    def predict(self, images, top_k: int = 1) -> list:
        """Per image: {"labels": top-k labels (a multi-label model: every label at or above its threshold),
        "scores": their probabilities, "probabilities": all}."""
        return predictions(self.probabilities(images), self.class_names, top_k, self.thresholds)
