"""The classifier described in a weights file, rebuilt on Keras' TensorFlow backend for the exporters."""
from __future__ import annotations

import keras

from resnet_automl.errors import ExportError
from resnet_automl.modeling.classifier import build_classifier
from resnet_automl.weights.io import load_weights, read_metadata


def classifier_from_weights_file(weights_path) -> tuple[keras.Model, dict]:
    """(model, description): the classifier described in a weights file (`weights_io.save_weights`
    metadata), rebuilt on this process's TensorFlow backend with its weights loaded."""
    if keras.backend.backend() != "tensorflow":
        raise ExportError("Exporting from a weights file needs the TensorFlow Keras backend; use "
                          "the functions of serving.savedmodel.tensorflow_process from other backends.")
    meta = read_metadata(weights_path)
    if not meta or meta.get("kind") != "classifier":
        raise ExportError(f"{str(weights_path)!r} is not a classifier weights file written by resnet-automl.")
    model = build_classifier(meta["backbone"], meta["num_classes"], image_size=meta["image_size"],
                             trainable_stages=0, multilabel=meta.get("task") == "multilabel")
    load_weights(model, weights_path)
    return model, meta
