"""ImageNet weights for the backbones: keras.applications files, and `.weights.h5` paths.

ResNet-50/101/152 use the keras.applications ImageNet files (same URLs and md5 hashes as Keras,
cached in `~/.keras/models` or `$KERAS_HOME/models`). The file is loaded into the reference
`keras.applications` model and copied into ours layer by layer, by name: our "keras" layout has
the same layers, so this is exact. Other backbones have no Keras ImageNet file yet.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

import keras

from ..errors import WeightsError
from .registry import BackboneSpec

KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
#: md5 of the headless ("notop") files, as in keras/src/applications/resnet.py.
KERAS_NOTOP_MD5 = {
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet101": "88cf7a10940856eca736dc7b7e228a21",
    "resnet152": "ee4c566cf9a93f14d82f913c2dc6dd0c",
}
KERAS_APPLICATIONS = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}
DOWNLOAD_TIMEOUT_S = 30


def keras_cache_dir() -> Path:
    """The folder Keras caches weight files in: `$KERAS_HOME/models` or `~/.keras/models`."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "models"


@contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def keras_weights_file(name: str) -> str:
    """Path of the keras.applications notop file of `name`, downloading it (with a timeout) if needed."""
    file_name = f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    url = KERAS_BASE_URL + file_name
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return keras.utils.get_file(file_name, url, cache_subdir="models", file_hash=KERAS_NOTOP_MD5[name])
    except Exception as exc:  # get_file raises a bare Exception offline
        raise WeightsError(
            f"Could not get the ImageNet weights of {name} ({file_name}) from {url}: {exc}. "
            f"Download that file on a connected machine and place it in {keras_cache_dir()} "
            "(the Keras cache), or pass weights=None (--weights none) to train from random "
            "initialisation.") from exc


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copy every weighted layer of `target` from the layer of the same name in `source`.

    Returns the number of layers copied; raises `WeightsError` on a missing layer or shape mismatch.
    """
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            values = source.get_layer(layer.name).get_weights()
            layer.set_weights(values)
        except ValueError as exc:
            raise WeightsError(f"Layer {layer.name!r} of {target.name} does not match the weights "
                               f"source {source.name}: {exc}") from exc
        copied += 1
    return copied


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
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        return "random initialisation"
    if isinstance(weights, str) and weights.lower() == "imagenet":
        if spec.name not in KERAS_NOTOP_MD5 or backbone.get_layer("conv1_conv").use_bias is False:
            from .torchvision_weights import load_converted_imagenet  # imports this module: import late

            return load_converted_imagenet(backbone, spec)
        path = keras_weights_file(spec.name)
        reference = getattr(keras.applications, KERAS_APPLICATIONS[spec.name])(
            include_top=False, weights=path, input_shape=tuple(backbone.input_shape[1:]))
        copy_weights_by_name(reference, backbone)
        return f"ImageNet ({path})"
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
