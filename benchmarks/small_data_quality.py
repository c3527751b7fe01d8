"""Small data from random initialisation: `fit` against a logistic regression on pixels and a small
plain CNN, on several small sets, each model scored on images none of them saw.

Sets (Fashion-MNIST from Debian's `dataset-fashion-mnist`, digits from scikit-learn):
  four        four easy Fashion-MNIST classes (T-shirt, trouser, sneaker, bag), 100 per class
  fm10-30     all ten Fashion-MNIST classes, 30 per class
  fm10-60     all ten, 60 per class
  fm10-100    all ten, 100 per class
  confusable  T-shirt, pullover, coat, shirt: the classes Fashion-MNIST models confuse, 100 per class
  digits      scikit-learn's 8x8 digits, 30 per class (the other ~1,500 images are the unseen set)

For each set and seed, `fit` gets the class-folder tree and `--minutes`; the logistic regression
learns from the same train + val images; the CNN (Keras' simple MNIST convnet: two 3x3
convolutions with max-pooling, dropout, a dense softmax; what AutoKeras settles on for such data)
trains on the same train images for at most the wall time `fit` took, keeping its best epoch on
the same val images. All three are scored on at least 1,000 unseen images (250 per class).

    python benchmarks/small_data_quality.py                         # every set, seeds 0 and 1, 6 minutes each
    python benchmarks/small_data_quality.py --sets fm10-60 --seeds 0
    python benchmarks/small_data_quality.py --no-cnn                # fit and LR only: comparing two versions of fit
    python benchmarks/small_data_quality.py --backbone resnet20     # a network of your choice instead of fit's
    python benchmarks/small_data_quality.py --fixed-epochs 6,60     # no time budget: equal epochs on any machine
    python benchmarks/small_data_quality.py --max-trials 1          # fit with a search of N trials
    python benchmarks/small_data_quality.py --smoke                 # tiny (the test suite runs this)

Prints one line per set and seed and a table at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import DEBIAN, as_rgb, debian_available, load_fashion_mnist, split_images, write_class_folders  # noqa: E402
from harness import log, pixel_baseline, pixels, print_table, save_rows, work_folder  # noqa: E402

from resnet_automl.runtime.backend import BACKEND_CHOICES, choose_backend  # noqa: E402

SETS = {
    "four": {"classes": (0, 1, 7, 8), "per_class": 100},
    "fm10-30": {"classes": tuple(range(10)), "per_class": 30},
    "fm10-60": {"classes": tuple(range(10)), "per_class": 60},
    "fm10-100": {"classes": tuple(range(10)), "per_class": 100},
    "confusable": {"classes": (0, 2, 4, 6), "per_class": 100},
    "digits": {"digits": True, "per_class": 30},
}
UNSEEN_PER_CLASS = 250
#: Search trials of a `--fixed-epochs` run (no time budget to stop the search).
FIXED_EPOCHS_TRIALS = 3


def load_set(name: str, seed: int, smoke: bool):
    """(images uint8 [N, H, W], labels, class names, unseen images, unseen labels)."""
    spec = SETS[name]
    per_class = 6 if smoke else spec["per_class"]
    if spec.get("digits"):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
        rng = np.random.default_rng(seed)
        train, unseen = [], []
        for c in range(10):
            index = rng.permutation(np.where(digits.target == c)[0])
            train += list(index[:per_class])
            unseen += list(index[per_class:])
        if smoke:
            unseen = unseen[:50]
        return (images[train], digits.target[train], [f"digit-{c}" for c in range(10)], images[unseen],
                digits.target[unseen])
    if not debian_available():  # the bundled 300 images are the demo's, with none left unseen
        raise SystemExit(f"set {name!r} needs Debian's Fashion-MNIST files in {DEBIAN}: "
                         "apt-get install dataset-fashion-mnist (or run --sets digits, which scikit-learn ships)")
    subset = load_fashion_mnist(list(spec["classes"]), per_class, seed, 5 if smoke else UNSEEN_PER_CLASS)
    return subset.images, subset.labels, subset.names, subset.held_images, subset.held_labels


def small_cnn(num_classes: int, shape: tuple):
    """Keras' simple MNIST convnet ("same" padding, so 8x8 digits fit too)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.MaxPooling2D()(layers.Conv2D(32, 3, padding="same", activation="relu")(x))
    x = layers.MaxPooling2D()(layers.Conv2D(64, 3, padding="same", activation="relu")(x))
    x = layers.Dropout(0.5)(layers.Flatten()(x))
    model = keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_cnn(split, seconds: float, unseen_x, unseen_y, smoke: bool) -> tuple:
    """(accuracy on the unseen images, seconds): the CNN on the split's train images, best epoch on val."""
    import keras

    def images_of(items):
        x, y = split_images(items)
        return x[..., None].astype("float32"), np.asarray(y)

    train_x, train_y = images_of(split["train"])
    val_x, val_y = images_of(split["val"])
    model = small_cnn(len(split["class_names"]), train_x.shape[1:])
    started = time.time()

    class WallTime(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if time.time() - started > seconds:
                self.model.stop_training = True

    best = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=10 ** 6,
                                         restore_best_weights=True)
    model.fit(train_x, train_y, validation_data=(val_x, val_y), batch_size=32, epochs=2 if smoke else 1000,
              verbose=0, callbacks=[best, WallTime()])
    predicted = np.argmax(model.predict(unseen_x[..., None].astype("float32"), verbose=0), axis=1)
    return float(np.mean(predicted == unseen_y)), time.time() - started


def _seconds(value) -> float | None:
    """The final training's mean epoch seconds (the machine's speed this run, for the table), or None."""
    return None if value is None else round(float(value), 2)


def run_case(name: str, seed: int, args, work: Path) -> dict:
    import keras

    import resnet_automl

    images, labels, names, unseen_x, unseen_y = load_set(name, seed, args.smoke)
    data = write_class_folders(images, labels, names, work / f"{name}-{seed}" / "data")
    extra = {"backbone": "tiny_resnet", "epochs": 1, "final_epochs": 1} if args.smoke else {}
    if args.backbone and not args.smoke:
        extra["backbone"] = args.backbone
    budget = resnet_automl.Budget(minutes=args.minutes, max_trials=args.max_trials)
    if args.fixed_epochs and not args.smoke:  # accuracy at equal epochs, whatever the machine's speed
        extra["epochs"], extra["final_epochs"] = args.fixed_epochs
        budget = resnet_automl.Budget(max_trials=args.max_trials or FIXED_EPOCHS_TRIALS)
    start = time.time()
    result = resnet_automl.fit(data, out=work / f"{name}-{seed}" / "run", overwrite=True, weights=None, seed=seed,
                               image_size=args.image_size, budget=budget, verbose=1 if args.verbose else 0,
                               **extra)
    fit_seconds = time.time() - start
    mapping = np.array([result.class_names.index(n) for n in names])  # fit's labels index its sorted names
    fit_accuracy = float(np.mean(np.argmax(result.model.predict(as_rgb(unseen_x), verbose=0), axis=1)
                                 == mapping[unseen_y]))
    split = json.loads((work / f"{name}-{seed}" / "run" / "data" / "split.json").read_text())
    linear = pixel_baseline(*split_images(split["train"] + split["val"]))
    linear_accuracy = float(np.mean(linear.predict(pixels(unseen_x)) == mapping[unseen_y]))
    cnn_accuracy, cnn_seconds = (train_cnn(split, fit_seconds, unseen_x, mapping[unseen_y], args.smoke)
                                 if args.cnn else (float("nan"), 0.0))
    row = {"set": name, "seed": seed, "train_images": len(labels), "unseen_images": len(unseen_y),
           "fit": fit_accuracy, "linear": linear_accuracy, "cnn": cnn_accuracy, "fit_seconds": round(fit_seconds, 1),
           "cnn_seconds": round(cnn_seconds, 1), "backbone": result.backbone,
           "image_size": result.report["model"]["image_size"], "hyperparameters": result.best_hyperparameters,
           "final_epochs": result.history.get("epochs_completed"), "trials": len(result.trials),
           "trial_s": round(sum(t.get("seconds") or 0 for t in result.trials), 1), "backend": keras.backend.backend(),
           "final_epoch_s": _seconds(result.history.get("epoch_seconds"))}
    log(f"{name} seed {seed}: fit {fit_accuracy:.4f} ({result.backbone}, {fit_seconds:.0f} s, {row['trials']} trials "
        f"in {row['trial_s']:.0f} s, final training "
        f"{row['final_epochs']} epochs at {row['final_epoch_s'] or float('nan'):.2f} s), logistic regression "
        f"{linear_accuracy:.4f}, small CNN {cnn_accuracy:.4f} ({cnn_seconds:.0f} s) on {len(unseen_y)} unseen images")
    return row


def _epoch_pair(text: str) -> tuple:
    """"6,60" -> (6, 60): trial and final epochs of `--fixed-epochs`."""
    try:
        trial, final = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TRIAL,FINAL epochs such as 6,60; got {text!r}") from None
    if trial <= 0 or final <= 0:
        raise argparse.ArgumentTypeError(f"epochs must be positive; got {text!r}")
    return trial, final


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--minutes", type=float, default=6.0, help="time budget of each fit (default 6)")
    parser.add_argument("--image-size", type=int, default=None, help="default: fit's automatic choice")
    parser.add_argument("--backbone", default=None,
                        help="passed to fit (default: fit's automatic choice; --smoke uses tiny_resnet)")
    parser.add_argument("--fixed-epochs", type=_epoch_pair, default=None, metavar="TRIAL,FINAL",
                        help="no time budget: TRIAL epochs per trial, FINAL final epochs, "
                             f"{FIXED_EPOCHS_TRIALS} trials (accuracy at equal epochs, whatever the machine's speed)")
    parser.add_argument("--max-trials", type=int, default=None,
                        help="tuner trials of each fit (default: fit's own choice)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--no-cnn", dest="cnn", action="store_false",
                        help="skip the small CNN (half the time): for comparing two versions of fit on the "
                             "same seeds, whose LR and CNN do not change")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="Keras backend of fit and the CNN, chosen as `resnet-automl fit --backend` does "
                             "(default auto: KERAS_BACKEND when set, else JAX when installed, since fit trains "
                             "from random initialisation here)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one set: seconds, not minutes")
    args = parser.parse_args(argv)
    backend, reason = choose_backend(args.backend)  # before anything imports Keras
    if args.smoke:
        # Fashion-MNIST where Debian's files are installed (.ci/run installs them), else scikit-learn's digits
        args.sets = "fm10-30" if debian_available() else "digits"
        args.seeds, args.minutes, args.image_size = "0", 1.0, 32

    log(f"Keras backend: {backend} ({reason})")
    with work_folder(args.workdir, "quality", keep=args.smoke) as work:
        rows = [run_case(name, int(seed), args, work) for name in args.sets.split(",")
                for seed in args.seeds.split(",")]
        print()
        print_table(rows, [("set", "set", "<11"), ("seed", "seed", ">4"), ("train", "train_images", ">6"),
                           ("unseen", "unseen_images", ">6"), ("fit", "fit", ">7.4f"), ("linear", "linear", ">7.4f"),
                           ("CNN", "cnn", ">7.4f"), ("fit-lin", lambda r: r["fit"] - r["linear"], ">+8.4f"),
                           ("fit-CNN", lambda r: r["fit"] - r["cnn"], ">+8.4f"), ("fit s", "fit_seconds", ">6.0f"),
                           ("epochs", lambda r: r["final_epochs"] or 0, ">6"),
                           ("s/ep", lambda r: r["final_epoch_s"] or float("nan"), ">5.2f"),
                           (" backbone", lambda r: f" {r['backbone']} {r['image_size']} px, {r['backend']}", "")])
        save_rows(work, "small_data_quality", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
