"""The demo's model and a logistic regression on pixels, scored on Fashion-MNIST images the demo never saw.

The demo ships 300 images (the first 75 of four classes in the Fashion-MNIST test file); its own
test split has 45 images, so one image moves accuracy 2.2 points. This scores the exported demo
model and a logistic regression trained on the same train + val images on `--per-class` images per
class from the Fashion-MNIST *training* file (needs Debian's `dataset-fashion-mnist`).

    resnet-automl demo && python benchmarks/demo_holdout.py runs/demo
    resnet-automl demo --export-formats savedmodel,litert,litert-int8,onnx && python benchmarks/demo_holdout.py
        # also scores each LiteRT / ONNX file of the run on the same images
    python benchmarks/demo_holdout.py --smoke     # a tiny model fitted on the demo data here (the tests run this)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import DEBIAN, holdout_accuracies, read_debian_fashion_mnist, split_images  # noqa: E402
from harness import pixel_baseline  # noqa: E402

DEMO_CLASSES = {0: "t-shirt", 1: "trouser", 7: "sneaker", 8: "bag"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo", help="the demo's run folder (default runs/demo)")
    parser.add_argument("--per-class", type=int, default=250, help="unseen images per class (default 250)")
    parser.add_argument("--smoke", action="store_true", help="fit a tiny model on the demo data first (seconds)")
    args = parser.parse_args(argv)
    if not (DEBIAN / "train-images-idx3-ubyte.gz").exists():
        print(f"{DEBIAN} not found: install Debian's dataset-fashion-mnist (apt install dataset-fashion-mnist)")
        return 0 if args.smoke else 2
    if args.smoke:
        import tempfile

        import resnet_automl
        from resnet_automl.pipeline.demo import write_demo_dataset

        args.run_dir, args.per_class = tempfile.mkdtemp(prefix="demo-holdout-"), 10
        data = write_demo_dataset(Path(args.run_dir) / "data")
        resnet_automl.fit(data, out=Path(args.run_dir), backbone="tiny_resnet", weights=None, image_size=32,
                          epochs=1, final_epochs=1, budget=resnet_automl.Budget(max_trials=1), verbose=0,
                          export_formats=["litert-int8"])
    from resnet_automl import load_model

    split = json.loads((Path(args.run_dir) / "data" / "split.json").read_text())
    class_names = split["class_names"]
    images, labels = read_debian_fashion_mnist("train")
    chosen = np.concatenate([np.where(labels == c)[0][:args.per_class] for c in DEMO_CLASSES])
    held, held_labels = images[chosen], np.array([class_names.index(DEMO_CLASSES[int(c)]) for c in labels[chosen]])
    linear = pixel_baseline(*split_images(split["train"] + split["val"]))
    ours, linear_accuracy = holdout_accuracies(load_model(args.run_dir).probabilities, linear, held, held_labels)
    print(f"{len(held_labels)} unseen images: demo model {ours:.4f}, "
          f"logistic regression on pixels {linear_accuracy:.4f}")
    print(f"difference (demo model - linear): {ours - linear_accuracy:+.4f}")
    for folder in sorted(Path(args.run_dir, "exports").glob("*")):  # the LiteRT / ONNX files, when exported
        if folder.is_dir() and not folder.name.startswith("."):
            exported, _ = holdout_accuracies(load_model(folder).probabilities, linear, held, held_labels)
            print(f"{folder.name} export on the same images: {exported:.4f} ({exported - ours:+.4f} vs the SavedModel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
