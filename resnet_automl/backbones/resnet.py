"""ONE builder for ResNet-18/34/50/101/152 and ResNeXt-50/101 (and the tiny test model).

A network is a `BackboneSpec` (block type, blocks per stage, cardinality, base width) plus a
layout switch: "keras" reproduces keras.applications' ResNet v1 exactly (stride in the first 1x1,
biased convolutions, BN epsilon 1.001e-5), so its ImageNet files load by layer name; "torch"
reproduces torchvision/timm v1.5 (stride in the 3x3, no conv bias, BN epsilon 1e-5, explicit
zero padding before strided convolutions, as PyTorch pads). Layers are named like
keras.applications: `conv1_*`, `conv2_block1_1_conv`, ... `conv5_block3_out`.
"""
from __future__ import annotations

import keras

from resnet_automl.backbones.layers import GroupedConv2D
from resnet_automl.backbones.registry import STAGES, BackboneSpec, get_spec


def default_grouped_mode() -> str:
    """"native" grouped convolutions when a GPU is visible, else "split" (fast on CPU)."""
    from resnet_automl.runtime.device import grouped_conv_mode

    return grouped_conv_mode()


class _Builder:
    """Holds the per-network settings while the functional graph is assembled."""

    def __init__(self, spec: BackboneSpec, layout: str, grouped_mode: str, bn_momentum: float):
        if layout not in ("keras", "torch"):
            raise ValueError(f"layout must be 'keras' or 'torch'. Received: layout={layout!r}")
        self.spec, self.layout, self.grouped_mode, self.bn_momentum = spec, layout, grouped_mode, bn_momentum
        self.bias = layout == "keras"
        self.epsilon = 1.001e-5 if layout == "keras" else 1e-5

    def conv(self, x, filters, kernel, stride, name, groups=1):
        padding = "valid"
        if kernel > 1:
            if self.layout == "torch" or stride > 1:
                x = keras.layers.ZeroPadding2D(kernel // 2, name=name[:-len("conv")] + "pad")(x)
            else:
                padding = "same"
        if groups > 1:
            return GroupedConv2D(filters, kernel, groups, strides=stride, padding=padding,
                                 mode=self.grouped_mode, name=name)(x)
        return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=self.bias,
                                   kernel_initializer="he_normal", name=name)(x)

    def bn(self, x, name, zero_gamma=False):
        return keras.layers.BatchNormalization(
            axis=-1, epsilon=self.epsilon, momentum=self.bn_momentum, name=name,
            gamma_initializer="zeros" if zero_gamma else "ones")(x)

    def stem(self, x):
        width = self.spec.base_channels
        if self.spec.stem == "cifar":  # one 3x3 convolution at full resolution, no pool
            x = self.conv(x, width, 3, 1, "conv1_conv")
            return keras.layers.Activation("relu", name="conv1_relu")(self.bn(x, "conv1_bn"))
        x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = keras.layers.Conv2D(width, 7, strides=2, use_bias=self.bias, kernel_initializer="he_normal",
                                name="conv1_conv")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(self.bn(x, "conv1_bn"))
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        return keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    def block(self, x, planes, stride, name):
        spec = self.spec
        expansion = 4 if spec.block == "bottleneck" else 1
        out_channels = planes * expansion
        shortcut = x
        if stride != 1 or x.shape[-1] != out_channels:
            shortcut = self.conv(x, out_channels, 1, stride, name + "_0_conv")
            shortcut = self.bn(shortcut, name + "_0_bn")
        if spec.block == "basic":
            x = self.conv(x, planes, 3, stride, name + "_1_conv")
            x = keras.layers.Activation("relu", name=name + "_1_relu")(self.bn(x, name + "_1_bn"))
            x = self.bn(self.conv(x, planes, 3, 1, name + "_2_conv"), name + "_2_bn", zero_gamma=True)
        else:
            width = int(planes * spec.base_width / 64) * spec.cardinality
            first_stride, mid_stride = (stride, 1) if self.layout == "keras" else (1, stride)
            x = self.conv(x, width, 1, first_stride, name + "_1_conv")
            x = keras.layers.Activation("relu", name=name + "_1_relu")(self.bn(x, name + "_1_bn"))
            x = self.conv(x, width, 3, mid_stride, name + "_2_conv", groups=spec.cardinality)
            x = keras.layers.Activation("relu", name=name + "_2_relu")(self.bn(x, name + "_2_bn"))
            x = self.bn(self.conv(x, out_channels, 1, 1, name + "_3_conv"), name + "_3_bn", zero_gamma=True)
        x = keras.layers.Add(name=name + "_add")([shortcut, x])
        return keras.layers.Activation("relu", name=name + "_out")(x)


def build_backbone(spec: BackboneSpec | str, input_shape=(None, None, 3), *, layout: str | None = None,
                   grouped_mode: str | None = None, bn_momentum: float = 0.99,
                   include_top: bool = False, classes: int = 1000) -> keras.Model:
    """Build a backbone with random weights.

    Args:
        spec: a `BackboneSpec` or a registry name ("resnet18" ... "resnext101_32x8d", "tiny_resnet").
        input_shape: tuple, shape of one preprocessed image. Defaults to (None, None, 3).
        layout: "keras" or "torch"; None takes the spec's. Defaults to None.
        grouped_mode: "split" or "native" for ResNeXt's grouped convolutions; None picks by device.
        bn_momentum: float, BatchNormalization momentum (lower adapts faster on small data).
            Defaults to 0.99 (Keras' default).
        include_top: bool, add global average pooling and a `classes`-way softmax named
            "predictions" (used to compare parameter counts with published models). Defaults to False.
        classes: int, outputs of the top. Defaults to 1000.

    Returns:
        A functional `keras.Model` named after the spec; headless, it outputs the conv5 feature map.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    builder = _Builder(spec, layout or spec.layout, grouped_mode or default_grouped_mode(), bn_momentum)
    inputs = keras.Input(shape=input_shape, name="image")
    x = builder.stem(inputs)
    for stage, (blocks, stride, planes) in enumerate(zip(spec.depths, spec.strides, spec.stage_widths, strict=True)):
        for index in range(blocks):
            x = builder.block(x, planes, stride if index == 0 else 1, f"{STAGES[stage + 1]}_block{index + 1}")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=spec.name)


def stage_of(layer_name: str) -> str | None:
    """The stage ("conv1".."conv5") a layer belongs to by its name, or None (input, head)."""
    prefix = layer_name.split("_", 1)[0]
    if prefix == "pool1":
        return "conv1"
    return prefix if prefix in STAGES else None


def set_trainable_stages(backbone: keras.Model, trainable_stages: int) -> None:
    """Make only the last `trainable_stages` of conv1..conv5 trainable (0: all frozen).

    Frozen BatchNormalization layers run in inference mode during `fit` (Keras 3 semantics of
    `trainable=False`), so their moving statistics stay as loaded.
    """
    if not isinstance(trainable_stages, int) or not 0 <= trainable_stages <= len(STAGES):
        raise ValueError(f"trainable_stages must be an integer in 0..{len(STAGES)}. "
                         f"Received: trainable_stages={trainable_stages!r}")
    trainable = set(STAGES[len(STAGES) - trainable_stages:])
    backbone.trainable = True
    for layer in backbone.layers:
        stage = stage_of(layer.name)
        if stage is not None:
            layer.trainable = stage in trainable


def layer_gflops(layer: keras.layers.Layer) -> float:
    """GFLOPs of one forward pass of `layer` for one image (multiply and add counted apart): conv
    and dense layers; 0.0 for any other layer."""
    if isinstance(layer, (keras.layers.Conv2D, GroupedConv2D)):
        kernel = layer.kernel.shape
        _, height, width, channels = layer.output.shape
        return 2 * height * width * channels * kernel[0] * kernel[1] * kernel[2] / 1e9
    if isinstance(layer, keras.layers.Dense):
        return 2 * layer.kernel.shape[0] * layer.kernel.shape[1] / 1e9
    return 0.0


def count_gflops(model: keras.Model) -> float:
    """GFLOPs of one forward pass (multiply and add counted apart) over conv and dense layers."""
    return sum(layer_gflops(layer) for layer in model.layers)
