"""Custom layers of the backbones: a grouped convolution with two execution forms, and the
input normalisation of each weight family."""
from __future__ import annotations

import keras
from keras import ops

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="resnet_automl")
class GroupedConv2D(keras.layers.Layer):
    """A grouped 2-D convolution with one kernel of shape (k, k, in/groups, filters).

    `mode="native"` runs it as one grouped convolution (fast on GPU); `mode="split"` runs one
    convolution per group and concatenates (about 50x faster to train on CPU, where TensorFlow's
    grouped kernel is slow). Both read the same kernel, so weights move freely between them.

    Args:
        filters: int, output channels (divisible by `groups`).
        kernel_size: int, square kernel side.
        groups: int, number of groups (input channels must divide by it).
        strides: int, stride. Defaults to 1.
        padding: "valid" or "same". Defaults to "valid".
        mode: "split" or "native". Defaults to "split".
    """

    def __init__(self, filters, kernel_size, groups, strides=1, padding="valid", mode="split",
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("split", "native"):
            raise ValueError(f"GroupedConv2D mode must be 'split' or 'native'. Received: mode={mode!r}")
        self.filters, self.kernel_size, self.groups = int(filters), int(kernel_size), int(groups)
        self.strides, self.padding, self.mode = int(strides), padding, mode
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels % self.groups or self.filters % self.groups:
            raise ValueError(f"{self.name}: channels {channels} and filters {self.filters} must both "
                             f"divide by groups={self.groups}.")
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer)

    def call(self, inputs):
        if self.mode == "native":
            return ops.conv(inputs, self.kernel, strides=self.strides, padding=self.padding)
        parts = zip(ops.split(inputs, self.groups, axis=-1), ops.split(self.kernel, self.groups, axis=-1), strict=True)
        return ops.concatenate([ops.conv(x, k, strides=self.strides, padding=self.padding) for x, k in parts],
                               axis=-1)

    def compute_output_shape(self, input_shape):
        size = [None if d is None else
                (d - self.kernel_size) // self.strides + 1 if self.padding == "valid" else -(-d // self.strides)
                for d in input_shape[1:3]]
        return (input_shape[0], *size, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "groups": self.groups, "strides": self.strides, "padding": self.padding, "mode": self.mode,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package="resnet_automl")
class Normalize(keras.layers.Layer):
    """Map RGB pixels in 0..255 to what a backbone's weights expect.

    Args:
        mode: "torch" ((x/255 - ImageNet mean) / std, RGB) or "caffe" (BGR, ImageNet mean
            subtracted, as keras.applications.resnet.preprocess_input).
    """

    def __init__(self, mode="torch", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("torch", "caffe"):
            raise ValueError(f"Normalize mode must be 'torch' or 'caffe'. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        mean = ops.convert_to_tensor(IMAGENET_MEAN_RGB, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(IMAGENET_STD_RGB, dtype=self.compute_dtype)
        return (x / 255.0 - mean) / std

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
