"""Fashion-MNIST for the benchmarks: Debian's `dataset-fashion-mnist` files (70,000 28x28 greyscale
images, MIT licence; `apt install dataset-fashion-mnist`), or the 300 images bundled with the
package when those are not installed (then there are no unseen hold-out images).
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from harness import pixels
from PIL import Image

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def debian_available() -> bool:
    return (DEBIAN / "train-images-idx3-ubyte.gz").exists() and (DEBIAN / "t10k-images-idx3-ubyte.gz").exists()


def read_debian_fashion_mnist(part: str):
    """(images uint8 [N, 28, 28], labels uint8 [N]) of Debian's Fashion-MNIST `part` ("t10k" or "train")."""
    images = np.frombuffer(gzip.open(DEBIAN / f"{part}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(DEBIAN / f"{part}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images.reshape(-1, 28, 28), labels


@dataclass
class Subset:
    """Images of some classes: `images` uint8 [N, 28, 28] with `labels` (indices into `names`), and
    `held_images`/`held_labels`: other images of the same classes that the models never see."""

    images: np.ndarray
    labels: np.ndarray
    names: list
    held_images: np.ndarray
    held_labels: np.ndarray


def load_fashion_mnist(classes: list, per_class: int, seed: int, holdout_per_class: int = 0,
                       part: str = "t10k") -> Subset:
    """`per_class` random images of each class index in `classes` from `part`, and up to
    `holdout_per_class` more per class as the unseen hold-out set (none with the bundled subset)."""
    if debian_available():
        images, labels = read_debian_fashion_mnist(part)
        names = NAMES
    else:
        from importlib import resources

        with resources.files("resnet_automl").joinpath("demo_data", "fashion_mnist_subset.npz").open("rb") as f:
            bundle = np.load(f)
            images, labels, names = bundle["images"], bundle["labels"], list(bundle["class_names"])
        classes = list(range(len(names)))
        holdout_per_class = 0
    rng = np.random.default_rng(seed)
    chosen_images, chosen_labels, held_images, held_labels = [], [], [], []
    for k, c in enumerate(classes):
        idx = rng.permutation(np.where(labels == c)[0])
        take = min(per_class, len(idx))
        chosen_images.append(images[idx[:take]])
        chosen_labels += [k] * take
        held = idx[take:take + holdout_per_class]
        held_images.append(images[held])
        held_labels += [k] * len(held)
    return Subset(np.concatenate(chosen_images), np.array(chosen_labels), [str(names[c]) for c in classes],
                  np.concatenate(held_images), np.array(held_labels))


def write_class_folders(images, labels, names, root: Path) -> Path:
    """Write greyscale images as `root/<class name>/<i>.png` and return `root`."""
    root = Path(root)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / names[label] / f"{i:05d}.png")
    return root


def split_images(items):
    """(uint8 greyscale images [N, H, W], list of labels) of a split's (path, label) items."""
    return (np.array([np.asarray(Image.open(p).convert("L"), np.uint8) for p, _ in items]),
            [label for _, label in items])


def as_rgb(images) -> np.ndarray:
    """Greyscale uint8 [N, H, W] as float32 RGB [N, H, W, 3] in 0..255 (what the classifiers take)."""
    return np.repeat(np.asarray(images)[..., None], 3, axis=-1).astype(np.float32)


def holdout_accuracies(probabilities_of, linear, images, labels):
    """(model accuracy, linear accuracy) on greyscale uint8 `images` [N, 28, 28] with `labels`.

    `probabilities_of` maps float32 RGB pixels [N, 28, 28, 3] in 0..255 to probabilities [N, C].
    """
    ours = float(np.mean(np.argmax(probabilities_of(as_rgb(images)), axis=1) == labels))
    return ours, float(linear.score(pixels(images), labels))
