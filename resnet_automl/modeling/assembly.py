"""The classifier's graph around a backbone: resize, normalisation, pooling, dropout, softmax head
(or a sigmoid head for multi-label data: one independent probability per class)."""
from __future__ import annotations

import keras

from resnet_automl.backbones import Normalize


def attach_head(net: keras.Model, spec, num_classes: int, *, image_size: int, dropout: float = 0.2,
                multilabel: bool = False) -> keras.Model:
    """Wrap the headless backbone `net` into a classifier of float32 RGB pixels (0..255, any size).

    Args:
        net: keras.Model, a headless backbone built by `build_backbone(spec, ...)`.
        spec: its `BackboneSpec` (gives the preprocessing and the model's name).
        num_classes: int, outputs of the softmax head.
        image_size: int, square side the images are resized to inside the model.
        dropout: float, dropout rate before the head. Defaults to 0.2.
        multilabel: bool, a sigmoid head (classes independent, any number per image) instead of
            softmax. Defaults to False.
    """
    inputs = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Resizing(image_size, image_size, name="resize")(inputs)
    x = Normalize(spec.preprocessing, name="normalize")(x)
    x = net(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="sigmoid" if multilabel else "softmax", dtype="float32",
                                 name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{spec.name}_classifier")


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone model inside a classifier built by `attach_head`."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))
