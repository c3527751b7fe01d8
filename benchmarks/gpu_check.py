"""GPU check (under 8 minutes): a small mixed-precision fit on generated data, and training
throughput of our input pipeline + model against raw `model.fit` of the same Keras model on
in-memory arrays, in the same run.

    python benchmarks/gpu_check.py                      # ResNet-50 at 128 px on the GPU
    python benchmarks/gpu_check.py --backbone tiny_resnet --image-size 32 --images 64   # CPU smoke run

Prints the device, the mixed-precision policy, both throughputs (images/s) and their ratio.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(root: Path, classes: int, per_class: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        colour = rng.integers(0, 255, 3)
        for i in range(per_class):
            pixels = np.clip(colour + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / f"class_{c}" / f"{i}.png")
    return root


def throughput(fit_once, images_per_epoch: int, epochs: int) -> float:
    fit_once(1)  # build, trace, warm up
    start = time.perf_counter()
    fit_once(epochs)
    return images_per_epoch * epochs / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="GPU check for resnet-automl")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=1024, help="generated images (4 classes)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=4.0, help="budget of the small fit")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    import resnet_automl
    from resnet_automl.autofit import _configure_device
    from resnet_automl.data import prepare_data
    from resnet_automl.data.pipeline import make_dataset
    from resnet_automl.model import build_classifier, compile_classifier

    gpus = tf.config.list_physical_devices("GPU")
    print(f"devices: {[d.name for d in gpus] or 'no GPU (CPU run)'}; TensorFlow {tf.__version__}", flush=True)
    _configure_device(print)
    print(f"mixed precision policy: {keras.mixed_precision.global_policy().name}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    data = make_images(work / "data", 4, args.images // 4, args.image_size)

    start = time.time()
    result = resnet_automl.fit(data, out=work / "run", backbone=args.backbone, weights=None,
                               image_size=args.image_size, batch_size=args.batch_size, epochs=2, final_epochs=2,
                               budget=resnet_automl.Budget(minutes=args.minutes, max_trials=2), verbose=1)
    print(f"fit: {time.time() - start:.0f} s, test accuracy {result.report['accuracy']:.3f}, "
          f"export check {'passed' if result.report['export']['passed'] else 'FAILED'}", flush=True)

    splits = prepare_data(data)
    items = splits.train + splits.val + splits.test
    ours_ds = make_dataset(items, args.image_size, args.batch_size, shuffle=True, cache=True)
    model = build_classifier(args.backbone, 4, image_size=args.image_size, trainable_stages=5)
    compile_classifier(model, 1e-3, 1000)
    ours = throughput(lambda e: model.fit(ours_ds, epochs=e, verbose=0), len(items), args.epochs)

    x = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) for p, _ in items])
    y = np.array([label for _, label in items])
    raw_model = build_classifier(args.backbone, 4, image_size=args.image_size, trainable_stages=5)
    raw_model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    raw = throughput(lambda e: raw_model.fit(x, y, batch_size=args.batch_size, epochs=e, verbose=0), len(items),
                     args.epochs)
    print(f"training throughput, {args.backbone} at {args.image_size} px, batch {args.batch_size}: "
          f"resnet-automl pipeline {ours:.1f} img/s, raw model.fit on arrays {raw:.1f} img/s, "
          f"ratio {ours / raw:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
