"""Small-data quality: `fit` against a logistic regression on raw pixels, on the same split.

Fashion-MNIST images (Debian's `dataset-fashion-mnist` when installed, else the 300 images bundled
with the package), a few classes and a few hundred images, written as a class-folder tree. Both
models train on the split `fit` saves (train + val for the linear model, which needs no
validation) and are scored on the same held-out test images.

    python benchmarks/small_data_quality.py --per-class 100 --minutes 6

Both are also scored on a larger hold-out set (`--holdout-per-class` more images per class that
neither model saw), because a split test set of 60 images moves 1.7 points per image.

Prints accuracy and seconds of both, and the differences, as its last lines.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_debian_fashion_mnist(part: str):
    """(images uint8 [N, 28, 28], labels uint8 [N]) of Debian's Fashion-MNIST `part` ("t10k" or "train")."""
    images = np.frombuffer(gzip.open(DEBIAN / f"{part}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(DEBIAN / f"{part}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images.reshape(-1, 28, 28), labels


def split_pixels(items):
    """(pixels float32 [N, H*W] in 0..1, labels [N]) of a split's (path, label) items, as greyscale."""
    return (np.array([np.asarray(Image.open(p).convert("L"), np.float32).ravel() / 255.0 for p, _ in items]),
            np.array([label for _, label in items]))


def holdout_accuracies(probabilities_of, linear, images, labels):
    """(model accuracy, linear accuracy) on greyscale uint8 `images` [N, 28, 28] with `labels`.

    `probabilities_of` maps float32 RGB pixels [N, 28, 28, 3] in 0..255 to probabilities [N, C].
    """
    rgb = np.repeat(images[..., None], 3, axis=-1).astype(np.float32)
    ours = float(np.mean(np.argmax(probabilities_of(rgb), axis=1) == labels))
    return ours, float(linear.score(images.reshape(len(images), -1) / 255.0, labels))


def load_fashion_mnist(classes: list, per_class: int, seed: int, holdout_per_class: int = 0):
    """(images, labels, class names, holdout images, holdout labels) for `classes` (indices into NAMES).

    Images are uint8 [N, 28, 28]; the hold-out images are other images of the same classes (none
    when only the bundled subset is available).
    """
    if (DEBIAN / "t10k-images-idx3-ubyte.gz").exists():
        images, labels = read_debian_fashion_mnist("t10k")
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
    return (np.concatenate(chosen_images), np.array(chosen_labels), [str(names[c]) for c in classes],
            np.concatenate(held_images), np.array(held_labels))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", default="0,1,7,8", help="Fashion-MNIST class indices (default 0,1,7,8)")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout-per-class", type=int, default=250,
                        help="extra unseen images per class both models are scored on (default 250)")
    parser.add_argument("--image-size", type=int, default=None, help="default: fit's automatic choice")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    import resnet_automl
    from sklearn.linear_model import LogisticRegression

    work = Path(args.workdir or tempfile.mkdtemp(prefix="quality-"))
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    images, labels, names, held_images, held_labels = load_fashion_mnist(
        [int(c) for c in args.classes.split(",")], args.per_class, args.seed, args.holdout_per_class)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        (data / names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(data / names[label] / f"{i:05d}.png")

    start = time.time()
    result = resnet_automl.fit(data, out=work / "run", overwrite=True, weights=None, seed=args.seed,
                               image_size=args.image_size,
                               budget=resnet_automl.Budget(minutes=args.minutes), verbose=1)
    fit_seconds = time.time() - start

    split = json.loads((work / "run" / "data" / "split.json").read_text())
    start = time.time()
    x_train, y_train = split_pixels(split["train"] + split["val"])
    x_test, y_test = split_pixels(split["test"])
    linear = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    linear_accuracy = float(linear.score(x_test, y_test))
    linear_seconds = time.time() - start
    ours = result.report["accuracy"]
    print(f"data: {len(labels)} images, {len(names)} classes, {len(y_test)} test images")
    print(f"fit ({result.backbone}, {result.best_hyperparameters}): accuracy {ours:.4f} in {fit_seconds:.0f} s")
    print(f"logistic regression on pixels: accuracy {linear_accuracy:.4f} in {linear_seconds:.1f} s")
    if len(held_labels):  # fit's labels index its sorted class names
        held_labels = np.array([result.class_names.index(names[k]) for k in held_labels])
        ours_held, linear_held = holdout_accuracies(lambda rgb: result.model.predict(rgb, verbose=0), linear,
                                                    held_images, held_labels)
        print(f"hold-out ({len(held_labels)} unseen images): fit {ours_held:.4f}, logistic regression {linear_held:.4f}")
    print(f"difference on the split's test set (fit - linear): {ours - linear_accuracy:+.4f}")
    if len(held_labels):
        print(f"difference on the hold-out set (fit - linear): {ours_held - linear_held:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
