"""GPU check on Keras' JAX backend, without TensorFlow (what the lent GPU machines have), in one run:

1. the device and the precision policy `fit` chooses there;
2. the peer: torchvision ResNet-50 training images/s (bf16 autocast, channels_last);
3. raw Keras: `model.fit` of this package's classifier on device-resident arrays;
4. this package's trial loop (`ResNetHyperModel.fit` on uint8 `ArrayBatches`, as the search runs it);
5. this package's final training (`train_final`: augmentation layers on the device, uint8 batches);
6. end-to-end `fit`s on generated images (default 20,000 at 224 px, ResNet-50 then ResNeXt-50, a
   10-minute budget each): per trial and for the final training the images/s, the share of the
   training time the device was busy (the images trained at raw Keras' rate of the same network,
   size and batch, measured first, over the loops' wall time), the host's peak RSS, the device's
   peak memory and each stage's wall time.

Throughputs are training images/s timed after one warm-up epoch (compilation), same model, batch
and precision; ratios are against raw Keras measured in the same run.

    KERAS_BACKEND=jax python benchmarks/gpu_check.py                 # ResNet-50, 224 px, batch 256, on a GPU
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --smoke         # tiny model on CPU (the test suite runs this)
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --fit-backbones resnet50 --fit-minutes 8   # fits a 15-min session

On the GPU machine (no TensorFlow, nothing to download): carry the wheels of keras, keras-tuner,
kt-legacy, namex and optree, install them with `pip install --no-index --no-deps --target WHEELS`,
and run with `PYTHONPATH=WHEELS:.`.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402


def make_images(root: Path, classes: int, per_class: int, size: int) -> Path:
    """Learnable generated images: a colour per class plus noise, as JPEG class folders (written by threads)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    colours = np.random.default_rng(0).integers(0, 255, (classes, 3))

    def write(job):
        c, i = job
        rng = np.random.default_rng(c * 1_000_003 + i)
        pixels = np.clip(colours[c] + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"class_{c}" / f"{i}.jpg", quality=90)

    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(write, [(c, i) for c in range(classes) for i in range(per_class)]))
    return root


def images_per_second(train_epoch, images_per_epoch: int, epochs: int) -> float:
    """Time `epochs` calls of `train_epoch()` after one warm-up call (compilation)."""
    train_epoch()
    start = time.perf_counter()
    for _ in range(epochs):
        train_epoch()
    return images_per_epoch * epochs / (time.perf_counter() - start)


def torchvision_peer(args, steps: int) -> float | None:
    """torchvision ResNet-50 train img/s, bf16 autocast + channels_last (None without torchvision or CUDA)."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    use_cuda = torch.cuda.is_available()
    if not use_cuda and not args.smoke:
        return None
    dev = torch.device("cuda" if use_cuda else "cpu")
    model = torchvision.models.resnet50(num_classes=1000).to(dev).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=dev).to(
        memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch_size,), device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def epoch():
        for _ in range(steps):
            step()
        if use_cuda:
            torch.cuda.synchronize()

    return images_per_second(epoch, steps * args.batch_size, args.epochs)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12, help="training steps per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    parser.add_argument("--fit-images", type=int, default=20000, help="generated images of the end-to-end fits")
    parser.add_argument("--fit-size", type=int, default=224, help="image size of the end-to-end fits")
    parser.add_argument("--fit-backbones", default="resnet50,resnext50_32x4d", help="one end-to-end fit each")
    parser.add_argument("--fit-minutes", type=float, default=10.0, help="time budget of each end-to-end fit")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the torchvision peer")
    parser.add_argument("--no-fit", dest="fit", action="store_false", help="skip the end-to-end fit")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 32 px, CPU: seconds (the tests run this)")
    return parser


def raw_keras(backbone: str, image_size: int, batch_size: int, steps: int, epochs: int) -> float:
    """Images/s of Keras `model.fit` on device-resident float32 arrays: the device's own pace for this
    network, size and batch (no host work per step)."""
    import keras

    from resnet_automl.modeling.classifier import build_classifier, compile_classifier

    n = steps * batch_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
    model = build_classifier(backbone, 4, image_size=image_size, trainable_stages=5)
    compile_classifier(model, 1e-3, (epochs + 1) * steps)
    on_device = (keras.ops.convert_to_tensor(images.astype(np.float32)),
                 keras.ops.convert_to_tensor(rng.integers(0, 4, n).astype(np.int32)))
    rate = images_per_second(lambda: model.fit(*on_device, batch_size=batch_size, epochs=1, verbose=0,
                                               shuffle=False), n, epochs)
    keras.backend.clear_session()
    return rate


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.backbone, args.image_size, args.batch_size, args.steps, args.epochs = "tiny_resnet", 32, 8, 2, 1
        args.fit_images, args.fit_size, args.fit_backbones = 48, 32, "tiny_resnet"

    import keras

    from resnet_automl.data.batches import ArrayBatches
    from resnet_automl.runtime import device
    from resnet_automl.search.hypermodel import ResNetHyperModel
    from resnet_automl.search.space import SearchSpace, TrialSettings
    from resnet_automl.training.final import FinalSettings, train_final

    setup = device.configure("auto")
    print(f"backend {setup.backend}; device {setup.description}; precision {setup.precision}; "
          f"TensorFlow importable: {device.tensorflow_available()}", flush=True)
    n = args.steps * args.batch_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, n).astype(np.int32)

    peer = torchvision_peer(args, args.steps) if args.peer else None
    print("torchvision ResNet-50 (bf16 autocast, channels_last): "
          + (f"{peer:,.0f} img/s" if peer else "skipped (--no-peer, or no torchvision, or no CUDA outside --smoke)"),
          flush=True)

    raw = raw_keras(args.backbone, args.image_size, args.batch_size, args.steps, args.epochs)
    print(f"raw Keras model.fit on device-resident float32 arrays: {raw:,.0f} img/s", flush=True)

    import keras_tuner as kt

    hypermodel = ResNetHyperModel(SearchSpace([args.backbone], [5]),
                                  TrialSettings(num_classes=4, image_size=args.image_size, epochs=args.epochs + 1,
                                                steps_per_epoch=args.steps, batch_size=args.batch_size))
    hp = kt.HyperParameters()
    trial_model = hypermodel.build(hp)
    batches = ArrayBatches(images, labels, args.batch_size, shuffle=True)
    val = ArrayBatches(images[:args.batch_size], labels[:args.batch_size], args.batch_size)
    trial = images_per_second(lambda: hypermodel.fit(hp, trial_model, batches, validation_data=val, epochs=1,
                                                     verbose=0), n, args.epochs)
    print(f"resnet-automl trial loop (uint8 batches, validation each epoch): {trial:,.0f} img/s "
          f"= {trial / raw:.2f}x raw Keras", flush=True)
    keras.backend.clear_session()

    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    timer = EpochTimes()
    with tempfile.TemporaryDirectory() as tmp:
        train_final({"backbone": args.backbone, "trainable_stages": 5, "learning_rate": 1e-3},
                    arrays={"train": images, "val": images[:args.batch_size]},
                    labels={"train": labels, "val": labels[:args.batch_size]},
                    settings=FinalSettings(num_classes=4, image_size=args.image_size, epochs=args.epochs + 1,
                                           batch_size=args.batch_size, bn_momentum=0.9, use_val=True),
                    weights=None, out_dir=tmp, extra_callbacks=[timer])
    final = n * args.epochs / sum(timer.seconds[1:])  # the first epoch compiles
    print(f"resnet-automl final training (augmentation layers on the device): {final:,.0f} img/s "
          f"= {final / raw:.2f}x raw Keras", flush=True)
    keras.backend.clear_session()

    if args.fit:
        end_to_end_fit(args)
    if peer:
        print(f"ratios: trial loop / raw Keras {trial / raw:.2f}; raw Keras / torchvision peer {raw / peer:.2f}")
    else:
        print(f"ratios: trial loop / raw Keras {trial / raw:.2f}")
    return 0


def device_peak_bytes() -> int | None:
    """Peak bytes in use on the first JAX device (None where the device does not report it: CPUs)."""
    try:
        import jax

        return (jax.local_devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        return None


def fit_figures(run_dir: Path, raw: float) -> dict:
    """Per-trial and final images/s, the device's busy share and the stage times of a finished fit's run folder."""
    import json

    record = json.loads((run_dir / "run.json").read_text())
    split = json.loads((run_dir / "data" / "split.json").read_text())
    train, val = len(split["train"]), len(split["val"])
    trials = []
    for trial in record.get("trials", []):
        seconds = (trial.get("phases") or {}).get("train") or 0.0
        trained = train * record["epochs"] if seconds else 0
        trials.append({"trial": trial["trial_id"], "seconds": trial["seconds"], "train_s": seconds,
                       "images_per_s": trained / seconds if seconds else None, "trained": trained})
    history = json.loads((run_dir / "final" / "history.json").read_text())
    epoch_seconds = history.get("epoch_seconds") or []
    per_epoch = train + (val if record.get("final_uses_val") else 0)
    final_s = sum(epoch_seconds[1:])  # the first epoch compiles
    final_rate = per_epoch * (len(epoch_seconds) - 1) / final_s if final_s else None
    trained = sum(t["trained"] for t in trials) + per_epoch * len(epoch_seconds)
    loops = sum(t["train_s"] for t in trials) + sum(epoch_seconds)
    return {"trials": trials, "final_images_per_s": final_rate, "final_epochs": len(epoch_seconds),
            "busy": trained / raw / loops if loops else None, "timings": record.get("timings", {})}


def end_to_end_fit(args) -> None:
    """One `fit` per `--fit-backbones` entry on `--fit-images` generated images, within `--fit-minutes`."""
    import resource

    import resnet_automl

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        data = make_images(Path(tmp) / "data", 4, max(3, args.fit_images // 4), args.fit_size)
        print(f"end-to-end: {args.fit_images} generated {args.fit_size} px images written in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        for backbone in args.fit_backbones.split(","):
            raw = raw_keras(backbone, args.fit_size, args.batch_size, args.steps, args.epochs)
            budget = resnet_automl.Budget(max_trials=2 if args.smoke else None,
                                          minutes=None if args.smoke else args.fit_minutes)
            short = {"epochs": 1, "final_epochs": 1} if args.smoke else {}
            start = time.perf_counter()
            result = resnet_automl.fit(data, out=Path(tmp) / f"run-{backbone}", backbone=backbone, weights=None,
                                       image_size=args.fit_size, batch_size=args.batch_size, budget=budget,
                                       verbose=0, **short)
            wall = time.perf_counter() - start
            figures = fit_figures(Path(tmp) / f"run-{backbone}", raw)
            print(f"end-to-end {backbone}: {wall:.0f} s (budget {args.fit_minutes:g} min), test accuracy "
                  f"{result.report['accuracy']:.3f}; raw Keras {raw:,.0f} img/s", flush=True)
            for trial in figures["trials"]:
                rate = f"{trial['images_per_s']:,.0f} img/s" if trial["images_per_s"] else "no training"
                print(f"  trial {trial['trial']}: {trial['seconds']:.0f} s, {rate}", flush=True)
            final = figures["final_images_per_s"]
            print(f"  final training: {figures['final_epochs']} epochs, "
                  + (f"{final:,.0f} img/s = {final / raw:.2f}x raw Keras" if final else "one epoch (no rate)"))
            busy = figures["busy"]
            peak = device_peak_bytes()
            print(f"  device busy {100 * busy:.0f}% of the training loops' time" if busy else "  device busy: -")
            print(f"  host peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB; device peak "
                  + (f"{peak / 2**30:.1f} GiB" if peak else "memory not reported"))
            print("  stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in figures["timings"].items()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
