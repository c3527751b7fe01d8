"""Multi-label classification: `fit` on a manifest against one-vs-rest logistic regression on pixels,
both scored on mosaics none of them saw.

Data: 2x2 mosaics (56x56 px) of four random Fashion-MNIST images (Debian's `dataset-fashion-mnist`);
an image's labels are the classes present in it (1 to 4 of the 10). The training mosaics are built
from the `train` part, the unseen ones from the `t10k` part, so no garment is in both.

For each seed, `fit` gets a CSV manifest (`path,labels`, labels joined by "|") and `--minutes`; it
searches by validation mAP and picks each label's threshold on val. The baseline is scikit-learn's
`OneVsRestClassifier(LogisticRegression)` on the same train images' pixels, its thresholds chosen
on the same val images by the same rule (`training.metrics.choose_thresholds`: max F1). Both are
scored on the unseen mosaics: mean average precision (macro over labels) and micro F1 at their thresholds.

    python benchmarks/multilabel.py                    # 3,000 mosaics, 2,000 unseen, seeds 0 and 1, 6 minutes each
    python benchmarks/multilabel.py --seeds 0 --minutes 3
    python benchmarks/multilabel.py --smoke            # tiny (the test suite runs this)

Prints one line per seed and a table at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import DEBIAN, NAMES, debian_available, read_debian_fashion_mnist, split_images  # noqa: E402
from harness import log, pixel_baseline, pixels, print_table, save_rows, work_folder  # noqa: E402

from resnet_automl.runtime.backend import BACKEND_CHOICES, choose_backend  # noqa: E402

#: Side of one Fashion-MNIST image; a mosaic is 2x2 of them.
CELL = 28


def mosaics(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 mosaics [count, 56, 56], multi-hot labels [count, 10]) of four random `images` each."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(images), size=(count, 4))
    cells = images[picks]  # [count, 4, 28, 28]
    out = np.concatenate([np.concatenate([cells[:, 0], cells[:, 1]], axis=2),
                          np.concatenate([cells[:, 2], cells[:, 3]], axis=2)], axis=1)
    hot = np.zeros((count, len(NAMES)), np.float32)
    for row, chosen in enumerate(labels[picks]):
        hot[row, chosen] = 1.0
    return out, hot


def write_manifest(pixels: np.ndarray, hot: np.ndarray, root: Path) -> Path:
    """Each mosaic as `root/img/<i>.png` and `root/labels.csv` (path,labels with "|" between labels)."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,labels"]
    for i, (image, row) in enumerate(zip(pixels, hot, strict=True)):
        Image.fromarray(image).save(root / "img" / f"{i:05d}.png")
        lines.append(f"img/{i:05d}.png," + "|".join(NAMES[c] for c in np.flatnonzero(row)))
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "labels.csv"


def scores(probabilities: np.ndarray, hot: np.ndarray, thresholds) -> dict:
    """mAP (macro over labels) and micro F1 at `thresholds` of `probabilities` [N, L] against `hot`."""
    from sklearn.metrics import f1_score

    from resnet_automl.training.metrics import mean_average_precision

    predicted = probabilities >= np.asarray(thresholds)[None, :]
    return {"map": mean_average_precision(hot, probabilities),
            "micro_f1": float(f1_score(hot > 0.5, predicted, average="micro", zero_division=0))}


def linear_baseline(split: dict, unseen_x: np.ndarray, unseen_hot: np.ndarray, num_labels: int) -> tuple:
    """(scores on the unseen mosaics, seconds) of one-vs-rest logistic regression on the train pixels,
    thresholds chosen on val by max F1 as `fit` chooses its own."""
    from resnet_automl.data.split import multi_hot
    from resnet_automl.training.metrics import choose_thresholds

    def images_and_hot(items):
        images, labels = split_images(items)
        return images, multi_hot(labels, num_labels)

    started = time.time()
    train_x, train_y = images_and_hot(split["train"])
    val_x, val_y = images_and_hot(split["val"])
    linear = pixel_baseline(train_x, train_y, multilabel=True, max_iter=2000)
    thresholds = [row["threshold"] for row in choose_thresholds(val_y, linear.predict_proba(pixels(val_x)))]
    result = scores(linear.predict_proba(pixels(unseen_x)), unseen_hot, thresholds)
    return result, time.time() - started


def run_seed(seed: int, args, work: Path) -> dict:
    import keras

    import resnet_automl

    train_images, train_labels = read_debian_fashion_mnist("train")
    test_images, test_labels = read_debian_fashion_mnist("t10k")
    pixels, hot = mosaics(train_images, train_labels, args.images, seed)
    unseen_x, unseen_hot = mosaics(test_images, test_labels, args.unseen, seed + 1000)
    folder = work / f"seed-{seed}"
    manifest = write_manifest(pixels, hot, folder / "data")
    extra = {"backbone": "tiny_resnet", "epochs": 1, "final_epochs": 1, "image_size": 32} if args.smoke else {}
    start = time.time()
    budget = resnet_automl.Budget(max_trials=1) if args.smoke else resnet_automl.Budget(minutes=args.minutes)
    result = resnet_automl.fit(manifest, out=folder / "run", overwrite=True, weights=None, seed=seed,
                               label_delimiter="|", budget=budget,
                               verbose=1 if args.verbose else 0, **extra)
    fit_seconds = time.time() - start
    run = json.loads((folder / "run" / "run.json").read_text())
    probabilities = result.model.predict(np.repeat(unseen_x[..., None], 3, axis=-1).astype(np.float32), verbose=0)
    present = [NAMES.index(name) for name in result.class_names]  # fit's labels: the names present, sorted
    ours = scores(probabilities, unseen_hot[:, present], run["thresholds"])
    split = json.loads((folder / "run" / "data" / "split.json").read_text())
    linear, linear_seconds = linear_baseline(split, unseen_x, unseen_hot[:, present], len(result.class_names))
    row = {"seed": seed, "train_mosaics": len(split["train"]), "val_mosaics": len(split["val"]),
           "unseen_mosaics": int(len(unseen_x)), "labels_per_image": round(float(hot.sum(axis=1).mean()), 2),
           "fit_map": ours["map"], "fit_micro_f1": ours["micro_f1"], "linear_map": linear["map"],
           "linear_micro_f1": linear["micro_f1"], "fit_seconds": round(fit_seconds, 1),
           "linear_seconds": round(linear_seconds, 1), "backbone": result.backbone,
           "image_size": result.report["model"]["image_size"], "hyperparameters": result.best_hyperparameters,
           "final_epochs": result.history.get("epochs_completed"), "backend": keras.backend.backend(),
           "labels": len(present)}
    log(f"seed {seed}: fit mAP {ours['map']:.4f}, micro F1 {ours['micro_f1']:.4f} ({result.backbone}, "
        f"{fit_seconds:.0f} s, {row['final_epochs']} final epochs); one-vs-rest logistic regression mAP "
        f"{linear['map']:.4f}, micro F1 {linear['micro_f1']:.4f} ({linear_seconds:.0f} s); on {len(unseen_x)} "
        "unseen mosaics")
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--minutes", type=float, default=6.0, help="time budget of each fit (default 6)")
    parser.add_argument("--images", type=int, default=3000, help="mosaics in the manifest (default 3,000)")
    parser.add_argument("--unseen", type=int, default=2000, help="unseen mosaics scored (default 2,000)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="Keras backend of fit, chosen as `resnet-automl fit --backend` does")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one seed: seconds, not minutes")
    args = parser.parse_args(argv)
    if not debian_available():
        print(f"needs Debian's Fashion-MNIST files in {DEBIAN}: apt-get install dataset-fashion-mnist")
        return 0 if args.smoke else 2
    backend, reason = choose_backend(args.backend)  # before anything imports Keras
    if args.smoke:
        args.seeds, args.images, args.unseen = "0", 60, 20

    log(f"Keras backend: {backend} ({reason})")
    with work_folder(args.workdir, "multilabel", keep=args.smoke) as work:
        rows = [run_seed(int(seed), args, work) for seed in args.seeds.split(",")]
        print()
        print_table(rows, [("seed", "seed", ">4"), ("train", "train_mosaics", ">6"), ("unseen", "unseen_mosaics", ">6"),
                           ("fit mAP", "fit_map", ">8.4f"), ("LR mAP", "linear_map", ">8.4f"),
                           ("diff", lambda r: r["fit_map"] - r["linear_map"], ">+7.4f"),
                           ("fit F1", "fit_micro_f1", ">7.4f"), ("LR F1", "linear_micro_f1", ">7.4f"),
                           ("fit s", "fit_seconds", ">6.0f"), ("epochs", lambda r: r["final_epochs"] or 0, ">6"),
                           (" backbone", lambda r: f" {r['backbone']} {r['image_size']} px, {r['backend']}", "")])
        save_rows(work, "multilabel", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
