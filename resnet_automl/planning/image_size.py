"""The training image side when `image_size` is not given, from the images themselves."""
from __future__ import annotations

import math
import statistics

from PIL import Image

from resnet_automl.data.split import DatasetSplits

#: Smallest median side (px) that trains at its own size from random initialisation; smaller goes to 32.
NATIVE_MIN_SIDE = 24
#: Largest median side (px) that trains at its own size (rounded up to a multiple of 8) from random initialisation.
NATIVE_MAX_SIDE = 64
#: Training images whose sides are read.
SAMPLED_IMAGES = 200


def auto_image_size(splits: DatasetSplits, accelerator: bool, pretrained: bool = True) -> int:
    """The training side for `image_size=None`: the median short side of (up to `SAMPLED_IMAGES`)
    training images rounded up to a multiple of 32, within 64..128 px on CPU and 64..224 px on a
    GPU (`accelerator`, bool).

    From random initialisation (`pretrained` False; default True), images of at most 64 px are not
    upsampled: the CIFAR-style ResNets (3x3 stem, no pooling) take them at their own median side
    when it is at least `NATIVE_MIN_SIDE` (Fashion-MNIST's 28 px: 23% fewer pixels than 32, so ~20%
    faster epochs and more of them in a time budget; 56 px mosaics: 23% fewer than 64), rounded up
    to a multiple of 8 above 32 px, and at 32 px when smaller (8 px digits: a 3-stage net needs room)."""
    sides = []
    for path, _ in splits.train[:: max(1, len(splits.train) // SAMPLED_IMAGES)]:
        with Image.open(path) as image:
            sides.append(min(image.size))
    median = statistics.median(sides)
    if not pretrained and median <= 32:
        return math.ceil(median) if median >= NATIVE_MIN_SIDE else 32
    if not pretrained and median <= NATIVE_MAX_SIDE:
        return math.ceil(median / 8.0) * 8
    side = math.ceil(median / 32.0) * 32
    return min(max(side, 64), 224 if accelerator else 128)
