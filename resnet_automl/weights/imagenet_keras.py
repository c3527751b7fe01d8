"""ImageNet weights for the backbones: keras.applications files, and `.weights.h5` paths.

ResNet-50/101/152 use the keras.applications ImageNet files (same URLs and md5 hashes as Keras,
cached in `~/.keras/models` or `$KERAS_HOME/models`). The file is loaded into the reference
`keras.applications` model and copied into ours layer by layer, by name: our "keras" layout has
the same layers, so this is exact. Other backbones have no Keras ImageNet file yet.
"""
from __future__ import annotations

import keras

from resnet_automl.backbones.registry import BackboneSpec
from resnet_automl.errors import WeightsError
from resnet_automl.weights.cache import DOWNLOAD_TIMEOUT_S, keras_cache_dir, socket_timeout

KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
#: md5 of the headless ("notop") files, as in keras/src/applications/resnet.py.
KERAS_NOTOP_MD5 = {
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet101": "88cf7a10940856eca736dc7b7e228a21",
    "resnet152": "ee4c566cf9a93f14d82f913c2dc6dd0c",
}
KERAS_APPLICATIONS = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}


def keras_weights_file(name: str) -> str:
    """Path of the keras.applications notop file of `name`, downloading it (with a timeout) if needed."""
    file_name = f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    url = KERAS_BASE_URL + file_name
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
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


def load_keras_imagenet(backbone: keras.Model, spec: BackboneSpec) -> str:
    """Load the keras.applications ImageNet file of `spec` into `backbone` (layout "keras").

    The file is loaded into the reference keras.applications model and copied layer by layer.
    Returns a short description ("ImageNet (<path>)").
    """
    path = keras_weights_file(spec.name)
    reference = getattr(keras.applications, KERAS_APPLICATIONS[spec.name])(
        include_top=False, weights=path, input_shape=tuple(backbone.input_shape[1:]))
    copy_weights_by_name(reference, backbone)
    return f"ImageNet ({path})"
