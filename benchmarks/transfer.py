"""Transfer learning from your own data: pretrain once with `fit`, then transfer to small tasks.

Source: six Fashion-MNIST classes (T-shirt, pullover, dress, coat, shirt, ankle boot) from the
training file, pretrained with `fit` itself from random initialisation (cached in --cache and
reused by later runs). Target: the four other classes (trouser, sandal, sneaker, bag) at a few
training images per class, also from the training file; every method is scored on images of the
test file that no model saw (1,000 per class), for each seed:

  (a) fit with the source run as weights and the default search (freeze depth x learning rate)
  (b) the same with trainable_stages fixed at 0 (b0) and at 5 (b5)
  (c) fit from random initialisation
  (d) linear probe: logistic regression on the source backbone's pooled features
  (e) logistic regression on pixels
(a)-(c) get the same time budget. The last lines compare the search time of (a) with and without
the frozen-prefix feature cache on the same trials.

    python benchmarks/transfer.py                       # sizes 10, 25, 100 per class, seeds 0 and 1
    python benchmarks/transfer.py --smoke               # tiny model and sizes (the test suite runs this)

Needs Debian's dataset-fashion-mnist (`apt install dataset-fashion-mnist`); without it the smoke
run uses the bundled demo images.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import NAMES, as_rgb, debian_available, read_debian_fashion_mnist, write_class_folders  # noqa: E402
from harness import log, pixel_baseline, pixels, print_table, save_rows, work_folder  # noqa: E402

SOURCE_CLASSES = (0, 2, 3, 4, 6, 9)
TARGET_CLASSES = (1, 5, 7, 8)


def pick(images, labels, classes, per_class, rng):
    """`per_class` random images of each class in `classes`; labels become indices into `classes`."""
    chosen, new_labels = [], []
    for k, c in enumerate(classes):
        index = rng.permutation(np.where(labels == c)[0])[:per_class]
        chosen.append(images[index])
        new_labels += [k] * len(index)
    return np.concatenate(chosen), np.array(new_labels)


def load_parts(smoke: bool):
    """(train images, train labels, unseen images, unseen labels, class names, source classes, target classes)."""
    if debian_available():
        train, train_labels = read_debian_fashion_mnist("train")
        test, test_labels = read_debian_fashion_mnist("t10k")
        return train, train_labels, test, test_labels, NAMES, SOURCE_CLASSES, TARGET_CLASSES
    if not smoke:
        raise SystemExit("benchmarks/transfer.py needs Debian's dataset-fashion-mnist "
                         "(apt install dataset-fashion-mnist)")
    from importlib import resources

    with resources.files("resnet_automl").joinpath("demo_data", "fashion_mnist_subset.npz").open("rb") as handle:
        bundle = np.load(handle)
        images, labels, names = bundle["images"], bundle["labels"], [str(n) for n in bundle["class_names"]]
    return images, labels, images, labels, names, (0, 1), (2, 3)  # smoke only: "unseen" images are seen


def pretrain_source(args, parts, log) -> Path:
    """The source run in `args.cache` (fitted once; a finished run there is reused)."""
    import resnet_automl

    run = Path(args.cache) / "source-run"
    if (run / "run.json").exists() and "report" in json.loads((run / "run.json").read_text()).get("stages_done", []):
        log(f"source: reusing {run}")
        return run
    train, train_labels, _, _, names, source_classes, _ = parts
    images, labels = pick(train, train_labels, source_classes, args.source_per_class, np.random.default_rng(123))
    data = write_class_folders(images, labels, [names[c] for c in source_classes], Path(args.cache) / "source-data")
    start = time.time()
    result = resnet_automl.fit(data, out=run, overwrite=True, weights=None, backbone=args.backbone,
                               image_size=args.image_size, budget=_budget(args.source_minutes, args),
                               verbose=1 if args.verbose else 0, **_epochs(args))
    log(f"source: {len(labels)} images of {len(source_classes)} classes, {result.backbone}, test accuracy "
        f"{result.report['accuracy']:.4f}, {time.time() - start:.0f} s")
    return run


def _budget(minutes: float, args):
    """The time budget of a fit; the smoke run also caps the trials (its fits take seconds)."""
    import resnet_automl

    return resnet_automl.Budget(minutes=minutes, max_trials=args.fit_options.get("max_trials"))


def _epochs(args) -> dict:
    """Fixed trial and final epochs of the smoke run; {} otherwise (fit's automatic epochs)."""
    return {k: v for k, v in args.fit_options.items() if k != "max_trials"}


def linear_probe(source_run: Path, train_x, train_y, unseen_x, unseen_y) -> float:
    """Logistic regression on the source backbone's globally pooled features."""
    import keras
    from sklearn.linear_model import LogisticRegression

    from resnet_automl.modeling.classifier import build_classifier

    meta = json.loads((source_run / "run.json").read_text())
    model = build_classifier(meta["best_hyperparameters"]["backbone"], 2, image_size=meta["image_size"],
                             trainable_stages=0, weights=str(source_run))
    features = keras.Model(model.input, model.get_layer("avg_pool").output)

    def embed(images):
        return np.concatenate([keras.ops.convert_to_numpy(features.predict_on_batch(as_rgb(images[i:i + 256])))
                               for i in range(0, len(images), 256)])

    probe = LogisticRegression(max_iter=5000).fit(embed(train_x), train_y)
    return float(probe.score(embed(unseen_x), unseen_y))


def score(result, names, unseen_x, unseen_y) -> float:
    """Accuracy of a fit's model on the unseen images (its labels index its sorted class names)."""
    mapping = np.array([result.class_names.index(name) for name in names])
    probabilities = result.model.predict(as_rgb(unseen_x), verbose=0, batch_size=256)
    return float(np.mean(np.argmax(probabilities, axis=1) == mapping[unseen_y]))


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,25,100", help="target training images per class")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--minutes", type=float, default=3.0, help="time budget of each target fit")
    parser.add_argument("--source-per-class", type=int, default=500)
    parser.add_argument("--source-minutes", type=float, default=15.0)
    parser.add_argument("--backbone", default="auto", help="backbone of the source fit (default: fit's choice)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="default: fit's choice (the source's for transfer)")
    parser.add_argument("--unseen-per-class", type=int, default=1000)
    parser.add_argument("--methods", default="a,b0,b5,c,d,e")
    parser.add_argument("--cache", default="runs/transfer-benchmark", help="folder of the source run (reused)")
    parser.add_argument("--workdir", default=None, help="folder of the target runs (default: a temporary one)")
    parser.add_argument("--no-cache-comparison", dest="cache_comparison", action="store_false",
                        help="skip the closing search-time comparison with and without the feature cache")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes: seconds, not minutes")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.sizes, args.seeds, args.minutes, args.source_per_class = "3", "0", 1.0, 8
        args.source_minutes, args.backbone, args.image_size, args.unseen_per_class = 1.0, "tiny_resnet", 32, 5
        args.methods = "a,b0,d,e"
        args.fit_options = {"epochs": 2, "final_epochs": 2, "max_trials": 2}  # fixed, short: seconds per fit
    else:
        args.fit_options = {}
    with work_folder(args.workdir, "transfer", keep=args.smoke) as work:
        if not args.smoke:
            args.cache = str(work / "cache")
        run_methods(args, work)
    return 0


def _rate_text(row: dict) -> str:
    rate = row["learning_rate"]
    return rate if rate == "-" else f"{rate:.2g}"


def run_methods(args, work: Path) -> None:
    """Pretrain (or reuse) the source, then each method at each size and seed; print and save the table."""
    import resnet_automl

    parts = load_parts(args.smoke)
    train, train_labels, test, test_labels, names, _, target_classes = parts
    target_names = [names[c] for c in target_classes]
    source_run = pretrain_source(args, parts, log)
    source = json.loads((source_run / "run.json").read_text())
    unseen_x, unseen_y = pick(test, test_labels, target_classes, args.unseen_per_class, np.random.default_rng(7))
    methods = args.methods.split(",")
    fits = {"a": {"weights": str(source_run)}, "b0": {"weights": str(source_run), "trainable_stages": [0]},
            "b5": {"weights": str(source_run), "trainable_stages": [5]},
            "c": {"weights": None, "backbone": source["best_hyperparameters"]["backbone"],
                  "image_size": source["image_size"]}}  # the source's network, from random weights
    rows = []
    for per_class in [int(s) for s in args.sizes.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            x, y = pick(train, train_labels, target_classes, per_class, np.random.default_rng(1000 + seed))
            data = write_class_folders(x, y, target_names, work / f"data-{per_class}-{seed}")
            for method in methods:
                start = time.time()
                if method in fits:
                    options = {"image_size": args.image_size, **fits[method]}
                    result = resnet_automl.fit(data, out=work / f"{method}-{per_class}-{seed}", overwrite=True,
                                               seed=seed, budget=_budget(args.minutes, args),
                                               verbose=1 if args.verbose else 0, **_epochs(args), **options)
                    accuracy, chosen = score(result, target_names, unseen_x, unseen_y), result.best_hyperparameters
                    depth, rate = chosen["trainable_stages"], chosen["learning_rate"]
                elif method == "d":
                    accuracy, depth, rate = linear_probe(source_run, x, y, unseen_x, unseen_y), "-", "-"
                else:
                    accuracy = float(pixel_baseline(x, y).score(pixels(unseen_x), unseen_y))
                    depth, rate = "-", "-"
                rows.append({"method": method, "per_class": per_class, "seed": seed, "accuracy": accuracy,
                             "seconds": round(time.time() - start, 1), "trainable_stages": depth,
                             "learning_rate": rate})
                log(f"{method:>3} {per_class:>4}/class seed {seed}: accuracy {accuracy:.4f} in "
                    f"{rows[-1]['seconds']:.0f} s"
                    f" (trainable_stages {depth}, learning rate {rate if rate == '-' else f'{rate:.2g}'})")
    print(f"\nunseen target images: {len(unseen_y)}; source {source_run}")
    print_table(rows, [("method", "method", ">6"), ("per class", "per_class", ">9"), ("seed", "seed", ">4"),
                       ("accuracy", "accuracy", ">9.4f"), ("seconds", "seconds", ">8.0f"),
                       ("depth", lambda r: str(r["trainable_stages"]), ">6"),
                       ("lr", _rate_text, ">8")])
    save_rows(work, "transfer", rows)
    if "a" in methods and args.cache_comparison:
        cache_comparison(args, source_run, work, target_names, log)


def cache_comparison(args, source_run, work, target_names, log) -> None:
    """The search of (a) at the largest size, seed 0, with and without the feature cache, same trials."""
    import resnet_automl

    per_class = max(int(s) for s in args.sizes.split(","))
    data = work / f"data-{per_class}-0"
    seconds = {}
    for cache in (True, False):
        out = work / f"cache-{cache}"
        result = resnet_automl.fit(data, out=out, overwrite=True, seed=0, image_size=args.image_size,
                                   weights=str(source_run), feature_cache=cache, tuner="random",
                                   budget=resnet_automl.Budget(max_trials=4 if not args.smoke else 2),
                                   verbose=0, **_epochs(args))
        seconds[cache] = json.loads((out / "run.json").read_text())["timings"]["search_s"]
        tried = [t["hyperparameters"]["trainable_stages"] for t in result.trials]
        log(f"search with feature cache {'on' if cache else 'off'}: {seconds[cache]:.0f} s, "
            f"trainable_stages tried {tried}")
    print(f"feature cache speedup of the search: {seconds[False] / max(seconds[True], 1e-9):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
