"""Search speed: a plain Keras Tuner search against ours, same data, space and number of trials.

(a) plain: what the Keras transfer-learning guide leads a user to write: keras.applications
    ResNet50 as a base model called with `training=False`, the first stages frozen by a
    hyperparameter, trained on the images every epoch of every trial;
(b) ours: `ResNetHyperModel` with the frozen-prefix feature cache: the frozen stages run once per
    prefix depth, trials train the trainable tail and the head on cached features.
Both read the same batches (images decoded once into uint8 arrays in memory), run the same
number of trials of the same epochs over trainable stages {0, 1} x log-uniform learning rate,
one after the other in this process. ImageNet weights are not reachable offline, so both start
from the same random backbone weights (`--weights imagenet` on a connected machine).

    python benchmarks/search_speed.py             # 1,200 Fashion-MNIST images, ResNet-50 at 64 px
    python benchmarks/search_speed.py --smoke     # 2 trials x 1 epoch at 32 px (the test suite runs this)

The last line is `speedup: N.NNx` (plain wall time / ours).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import load_fashion_mnist, write_class_folders  # noqa: E402


def plain_hypermodel(num_classes: int, image_size: int, weights, low: float, high: float, start=None):
    """The user's hypermodel. `start`: a backbone whose weights stand in for the ImageNet download."""
    import keras

    from resnet_automl.weights.imagenet_keras import copy_weights_by_name

    def build(hp):
        base = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
        if start is not None:
            copy_weights_by_name(start, base)
        hp.Fixed("backbone", "resnet50")  # the same search space as ours, so both sample the same trials
        trainable_stages = hp.Choice("trainable_stages", [0, 1])
        base.trainable = trainable_stages > 0
        for layer in base.layers:
            layer.trainable = trainable_stages > 0 and layer.name.startswith("conv5")
        inputs = keras.Input((image_size, image_size, 3))
        x = keras.applications.resnet.preprocess_input(inputs)
        x = base(x, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.2)(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(hp.Float("learning_rate", low, high, sampling="log")),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return build


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command-line arguments."""
    parser = argparse.ArgumentParser(description="plain Keras Tuner search vs resnet-automl's cached search")
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--classes", default="0,1,7,8")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default=None, help="imagenet on a connected machine; default random init")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds not minutes (the tests run this)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the tuner's line per trial
    if args.smoke:
        args.per_class, args.image_size, args.trials, args.epochs, args.batch_size = 8, 32, 2, 1, 16

    import keras
    import keras_tuner as kt
    import numpy as np

    from resnet_automl.data import prepare_data
    from resnet_automl.data.arrays import load_images
    from resnet_automl.data.batches import ArrayBatches
    from resnet_automl.modeling.features import FeatureCache
    from resnet_automl.search.hypermodel import ResNetHyperModel, SearchSpace, TrialSettings
    from resnet_automl.search.tuner import make_tuner

    work = Path(args.workdir or tempfile.mkdtemp(prefix="search-speed-"))
    shutil.rmtree(work, ignore_errors=True)
    subset = load_fashion_mnist([int(c) for c in args.classes.split(",")], args.per_class, 0)
    names = subset.names
    splits = prepare_data(write_class_folders(subset.images, subset.labels, names, work / "data"))
    size, batch, low, high = args.image_size, args.batch_size, 1e-4, 1e-2
    # decoded once for both runs: the comparison is about the search, not image decoding
    train = ArrayBatches(load_images(splits.train, size), [y for _, y in splits.train], batch, shuffle=True)
    val = ArrayBatches(load_images(splits.val, size), [y for _, y in splits.val], batch)
    print(f"data: {len(splits.train)} train, {len(splits.val)} val images, {len(names)} classes, {size} px; "
          f"{args.trials} trials x {args.epochs} epochs over trainable_stages {{0, 1}} x learning rate", flush=True)

    start_backbone, ours_weights = None, args.weights
    if args.weights is None:  # offline: both start from the same random backbone weights
        from resnet_automl.backbones import build_backbone

        keras.utils.set_random_seed(123)
        start_backbone = build_backbone("resnet50", (size, size, 3), layout="keras")
        ours_weights = str(work / "resnet50_start.weights.h5")
        start_backbone.save_weights(ours_weights)
    results = {}
    for name in ("plain", "ours"):
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        if name == "plain":
            tuner = kt.RandomSearch(plain_hypermodel(len(names), size, args.weights, low, high, start_backbone),
                                    objective="val_accuracy",
                                    max_trials=args.trials, seed=0, directory=str(work), project_name="plain",
                                    overwrite=True)
        else:
            steps = int(np.ceil(len(splits.train) / batch))
            hypermodel = ResNetHyperModel(
                SearchSpace(["resnet50"], [0, 1], (low, high)),
                TrialSettings(num_classes=len(names), image_size=size, epochs=args.epochs, steps_per_epoch=steps,
                              batch_size=batch, patience=args.epochs, seed=0),
                weights=ours_weights, feature_cache=FeatureCache(work / "cache"), items=(splits.train, splits.val))
            tuner = make_tuner("random", hypermodel, objective="val_accuracy", max_trials=args.trials,
                               directory=work / "ours", seed=0, overwrite=True)
        tuner.search(train, validation_data=val, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        best = tuner.oracle.get_best_trials(1)[0]
        results[name] = (seconds, best.score)
        tried = [dict(t.hyperparameters.values) for t in tuner.oracle.trials.values()]
        print(f"{name}: {seconds:.1f} s, best val accuracy {best.score:.4f}; trials {tried}", flush=True)
        keras.backend.clear_session()
    (plain_s, plain_acc), (ours_s, ours_acc) = results["plain"], results["ours"]
    print(f"best val accuracy: plain {plain_acc:.4f}, ours {ours_acc:.4f} (difference {ours_acc - plain_acc:+.4f})")
    print(f"wall time: plain {plain_s:.1f} s, ours {ours_s:.1f} s")
    print(f"speedup: {plain_s / ours_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
