"""Shared fixtures: tiny image datasets written by the tests themselves, and a clean Keras state."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest
from PIL import Image

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 210, 40), (200, 40, 200)]


def write_image(path, colour=(128, 128, 128), size=32, fmt=None, seed=0, mode="RGB"):
    """Write a small learnable image: a class colour plus noise, as `fmt` (from the suffix)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 25, (size, size, 3)), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def make_class_folders(root, classes=("red", "green", "blue"), per_class=6, size=32, ext=".png",
                       start_seed=0):
    """A class-folder tree `root/<class>/<i><ext>` with distinct, learnable colours per class."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"img_{i}{ext}", COLOURS[c % len(COLOURS)], size,
                        seed=start_seed + 1000 * c + i)
    return root


def batches(items, size, batch_size, *, shuffle=False, seed=0):
    """`ArrayBatches` of (path, label) items decoded at `size` px, as `fit` feeds them."""
    from resnet_automl.data.arrays import load_images
    from resnet_automl.data.batches import ArrayBatches

    return ArrayBatches(load_images(items, size), [label for _, label in items], batch_size, shuffle=shuffle,
                        seed=seed)


@pytest.fixture
def image_folder(tmp_path):
    """3 classes x 6 PNG images of 32 px."""
    return make_class_folders(tmp_path / "data")


@pytest.fixture(autouse=True)
def _seeded(request):
    """Seed numpy (and Keras when a test has imported it) and clear the Keras session after (its global
    state and names; Python's garbage collector runs on its own schedule)."""
    np.random.seed(0)
    yield
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session(free_memory=False)  # no gc.collect (0.1-1 s a test)


WEIRD_CLASS = "<b>&\"odd' café"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny end-to-end fit shared by the export, predict, report and CLI tests (~30 s)."""
    import resnet_automl

    base = tmp_path_factory.mktemp("trained")
    data = make_class_folders(base / "data", classes=("red", "green", WEIRD_CLASS), per_class=8)
    write_image(data / "red" / "photo.jpg", COLOURS[0], seed=77)
    (data / "green" / "broken.png").write_bytes(b"not an image")
    result = resnet_automl.fit(data, out=base / "run", backbone="tiny_resnet", weights=None, image_size=32,
                               epochs=1, final_epochs=1, budget=resnet_automl.Budget(max_trials=2), verbose=0)
    return result


@pytest.fixture(scope="session")
def pretrained_file(tmp_path_factory):
    """A weights file of this package (a tiny_resnet classifier, 3 classes, 32 px) to transfer from."""
    from resnet_automl.backbones import get_spec
    from resnet_automl.modeling.classifier import build_classifier
    from resnet_automl.weights.io import save_weights

    model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=5)
    path = tmp_path_factory.mktemp("source") / "source.weights.h5"
    save_weights(model, path, {"kind": "classifier", "backbone": "tiny_resnet",
                               "layout": get_spec("tiny_resnet").layout, "num_classes": 3,
                               "class_names": ["a", "b", "c"], "image_size": 32, "trainable_stages": 5})
    return str(path)
