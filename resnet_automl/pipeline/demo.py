"""`resnet-automl demo`: fit on 300 bundled Fashion-MNIST images (4 classes, MIT licence)."""
from __future__ import annotations

import io
import logging
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from resnet_automl.config.budget import Budget
from resnet_automl.errors import WeightsError

logger = logging.getLogger(__name__)

DEMO_FILE = "fashion_mnist_subset.npz"


def write_demo_dataset(target) -> Path:
    """Write the bundled images as a class-folder tree `target/<class>/<i>.png` and return it."""
    target = Path(target)
    with resources.files("resnet_automl").joinpath("demo_data", DEMO_FILE).open("rb") as handle:
        bundle = np.load(io.BytesIO(handle.read()))
    images, labels, names = bundle["images"], bundle["labels"], [str(n) for n in bundle["class_names"]]
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = target / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:04d}.png"
        if not path.exists():
            Image.fromarray(pixels).save(path)
    return target


def imagenet_available() -> bool:
    """True when the ResNet-50 ImageNet file is cached or can be downloaded now."""
    from resnet_automl.weights.imagenet_keras import keras_weights_file

    try:
        keras_weights_file("resnet50")
        return True
    except WeightsError:
        return False


def run_demo(out="runs/demo", minutes: float = 6.0, overwrite: bool = False, verbose: int = 1,
             export_formats=("savedmodel",)):
    """Fit on the demo data within `minutes` and return the `FitResult`; train from random
    initialisation when no ImageNet weights can be had (a warning says so). `export_formats` as in `fit`."""
    from resnet_automl.pipeline.fit import fit

    out = Path(out)
    data = write_demo_dataset(out.parent / f"{out.name}-data")
    weights, backbone = "imagenet", "resnet50"
    if not imagenet_available():
        logger.warning("[demo] No ImageNet weights reachable (offline, and none in the Keras cache): the demo "
                       "trains from RANDOM INITIALISATION instead (weights=None).")
        weights, backbone = None, "auto"
    return fit(data, out=out, budget=Budget(minutes=minutes), weights=weights, backbone=backbone,
               overwrite=overwrite, verbose=verbose, export_formats=tuple(export_formats))
