"""Load starting weights into a headless backbone: ImageNet (Keras or torchvision files) or a file."""
from __future__ import annotations

from pathlib import Path

import keras

from resnet_automl.backbones.registry import BackboneSpec
from resnet_automl.config.options import canonical_weights
from resnet_automl.errors import WeightsError
from resnet_automl.weights.imagenet_keras import KERAS_NOTOP_MD5, load_keras_imagenet
from resnet_automl.weights.imagenet_torchvision import load_converted_imagenet


def load_backbone_weights(backbone: keras.Model, spec: BackboneSpec, weights) -> str:
    """Load `weights` into `backbone` and return a short description of what was loaded.

    Args:
        backbone: model built by `build_backbone(spec)` (headless).
        spec: its `BackboneSpec`.
        weights: None (keep random initialisation), "imagenet", or a path to a `.weights.h5`
            file saved from the same backbone. "imagenet" loads the keras.applications file for
            ResNet-50/101/152 in layout "keras", and converted torchvision weights for every
            backbone in layout "torch" (see `convert.load_converted_imagenet`).
    """
    weights = canonical_weights(weights)
    if weights is None:
        return "random initialisation"
    if weights == "imagenet":
        if spec.name not in KERAS_NOTOP_MD5 or backbone.get_layer("conv1_conv").use_bias is False:
            return load_converted_imagenet(backbone, spec)
        return load_keras_imagenet(backbone, spec)
    path = Path(weights)
    if not path.is_file() or not path.name.endswith(".weights.h5"):
        raise WeightsError(
            "The `weights` argument should be either None, 'imagenet', or the path to a "
            f".weights.h5 file saved from the same backbone. Received: weights={str(weights)!r}"
            + ("" if path.is_file() else " (no such file)."))
    try:
        backbone.load_weights(str(path))
    except Exception as exc:
        raise WeightsError(f"The weights file {str(path)!r} does not fit {spec.name}: {exc}") from exc
    return f"file {path}"
