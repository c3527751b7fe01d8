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
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import holdout_accuracies, load_fashion_mnist, split_pixels, write_class_folders  # noqa: E402

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
    subset = load_fashion_mnist([int(c) for c in args.classes.split(",")], args.per_class, args.seed,
                                args.holdout_per_class)
    names, labels, held_images, held_labels = subset.names, subset.labels, subset.held_images, subset.held_labels
    write_class_folders(subset.images, labels, names, data)

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
