"""Search speed: the search `fit` runs against plain Keras Tuner replaying the same trials.

(a) ours: the search `fit` runs with pretrained weights: `ResNetHyperModel` over its default space
    (trainable stages [0, 1, 2, 3, 5] x log-uniform learning rate 1e-4..1e-2, the rate inactive at
    depth 0 where the head is the linear probe), its default tuner (Bayesian), trial count, epochs
    per trial, patience and seed, with the frozen-prefix feature cache and built models reused.
(b) plain: what the Keras transfer-learning guide leads a user to write: keras.applications
    ResNet50 as a base model called with `training=False`, the last `trainable_stages` stages
    unfrozen, a new softmax head trained on the images every epoch of every trial, for the same
    epochs. Its oracle replays the trials ours ran, in order (the probe trial, which has no learning
    rate, at the centre of the range), so both run the same configurations.
Both read the same uint8 batches (images decoded once), one after the other in this process. ImageNet
weights are not reachable offline, so both start from the same random backbone weights saved to a
file, which ours treats as any pretrained file (`--weights imagenet` on a connected machine).

    python benchmarks/search_speed.py                        # 1,200 Fashion-MNIST images, ResNet-50, 64 px
    python benchmarks/search_speed.py --image-sizes 64,128   # one row per size
    python benchmarks/search_speed.py --smoke                # tiny sizes (the test suite runs this)

Prints each trial of both (configuration, score, seconds; ours with its phases), the seconds of
both per depth, the bound (plain's total over ours' seconds on the trials that train every stage:
no frozen prefix to cache there, so no speedup on this trial list can pass it), then one row per
image size: wall time of both, best val accuracy of both, `speedup: N.NNx` (plain / ours), bound.
"""
from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import load_fashion_mnist, write_class_folders  # noqa: E402

#: keras.applications ResNet50 layer-name prefixes of each stage, conv1 .. conv5.
KERAS_STAGE_PREFIXES = (("conv1_", "pool1_"), ("conv2_",), ("conv3_",), ("conv4_",), ("conv5_",))


def plain_hypermodel(num_classes: int, image_size: int, weights, stage_choices, low: float, high: float,
                     start=None):
    """The user's hypermodel. `start`: a backbone whose weights stand in for the ImageNet download."""
    import keras

    from resnet_automl.weights.imagenet_keras import copy_weights_by_name

    def build(hp):
        keras.backend.clear_session()
        base = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
        if start is not None:
            copy_weights_by_name(start, base)
        hp.Fixed("backbone", "resnet50")
        stages = hp.Choice("trainable_stages", stage_choices)
        rate = hp.Float("learning_rate", low, high, sampling="log", default=math.sqrt(low * high))
        trainable = KERAS_STAGE_PREFIXES[len(KERAS_STAGE_PREFIXES) - stages:] if stages else ()
        prefixes = tuple(p for stage in trainable for p in stage)
        base.trainable = stages > 0
        for layer in base.layers:
            layer.trainable = stages > 0 and layer.name.startswith(prefixes)
        inputs = keras.Input((image_size, image_size, 3))
        x = keras.applications.resnet.preprocess_input(inputs)
        x = base(x, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.2)(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return build


def replay_oracle(values_list: list):
    """A Keras Tuner oracle that proposes `values_list` (list of dicts) in order, then stops."""
    import keras_tuner as kt

    class ReplayOracle(kt.Oracle):
        def populate_space(self, trial_id):
            done = len([t for t in self.trials.values() if t.trial_id != trial_id])
            if done >= len(values_list):
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": dict(values_list[done])}

    return ReplayOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=len(values_list))


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command-line arguments."""
    parser = argparse.ArgumentParser(description="plain Keras Tuner replaying our trials vs resnet-automl's search")
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--classes", default="0,1,7,8")
    parser.add_argument("--image-sizes", default="64", help="comma-separated; one row per size")
    parser.add_argument("--backbone", default="resnet50", help="resnet50 (plain uses keras.applications ResNet50)")
    parser.add_argument("--trials", type=int, default=None, help="default: fit's default trial count")
    parser.add_argument("--epochs", type=int, default=None, help="default: fit's epochs per trial")
    parser.add_argument("--tuner", default="bayesian", help="fit's default")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default=None, help="imagenet on a connected machine; default random init")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds not minutes (the tests run this)")
    return parser


def run_ours(args, data, size: int, weights_file, work: Path):
    """Run the package's search; return (seconds, best score, tuner)."""
    import keras

    from resnet_automl.modeling.classifier import suggested_bn_momentum
    from resnet_automl.modeling.features import FeatureCache
    from resnet_automl.planning.ranges import PRETRAINED_STAGE_CHOICES
    from resnet_automl.planning.schedule import default_epochs, default_trials
    from resnet_automl.search.hypermodel import ResNetHyperModel
    from resnet_automl.search.space import SearchSpace, TrialSettings
    from resnet_automl.search.tuner import best_trial, make_tuner

    splits, train, val, names = data
    steps = math.ceil(len(splits.train) / args.batch_size)
    epochs = args.epochs or default_epochs(steps)
    choices = list(PRETRAINED_STAGE_CHOICES)
    trials = args.trials or default_trials(len(choices))
    hypermodel = ResNetHyperModel(
        SearchSpace([args.backbone], choices),
        TrialSettings(num_classes=len(names), image_size=size, epochs=epochs, steps_per_epoch=steps,
                      batch_size=args.batch_size, bn_momentum=suggested_bn_momentum(epochs * steps), seed=0,
                      class_names=list(names)),
        weights=weights_file, feature_cache=FeatureCache(work / "cache"), items=(splits.train, splits.val))
    tuner = make_tuner(args.tuner, hypermodel, objective="val_accuracy", max_trials=trials, directory=work / "ours",
                       seed=0, overwrite=True, epochs=epochs)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    tuner.search(train, validation_data=val, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    keras.backend.clear_session()
    return seconds, best_trial(tuner.oracle).score, tuner, epochs


def run_plain(args, data, size: int, replay: list, epochs: int, start_backbone, work: Path):
    """Run plain Keras Tuner over `replay` (list of value dicts); return (seconds, best score, tuner)."""
    import keras
    import keras_tuner as kt

    from resnet_automl.planning.ranges import PRETRAINED_STAGE_CHOICES
    from resnet_automl.search.space import LEARNING_RATE_RANGE

    _, train, val, names = data
    build = plain_hypermodel(len(names), size, args.weights, list(PRETRAINED_STAGE_CHOICES), *LEARNING_RATE_RANGE,
                             start=start_backbone)
    tuner = kt.Tuner(oracle=replay_oracle(replay), hypermodel=build, directory=str(work), project_name="plain",
                     overwrite=True)
    times = {}
    tuner.on_trial_begin = _timed_begin(tuner.on_trial_begin, times)
    tuner.on_trial_end = _timed_end(tuner.on_trial_end, times)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    tuner.search(train, validation_data=val, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    keras.backend.clear_session()
    best = tuner.oracle.get_best_trials(1)[0]
    assert isinstance(best, kt.engine.trial.Trial)
    return seconds, best.score, tuner, times


def _timed_begin(method, times):
    def on_trial_begin(trial):
        times[trial.trial_id] = time.perf_counter()
        return method(trial)
    return on_trial_begin


def _timed_end(method, times):
    def on_trial_end(trial):
        result = method(trial)
        times[trial.trial_id] = time.perf_counter() - times[trial.trial_id]
        return result
    return on_trial_end


def describe(values: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
                     if k != "backbone")


def one_size(args, subset, size: int, work: Path) -> tuple:
    """Both searches at `size` px; prints their trials; returns (plain s, ours s, plain acc, ours acc, bound)."""
    import keras

    from resnet_automl.backbones import build_backbone
    from resnet_automl.data import prepare_data
    from resnet_automl.data.arrays import load_images
    from resnet_automl.data.batches import ArrayBatches
    from resnet_automl.search.space import LEARNING_RATE_RANGE
    from resnet_automl.search.tuner import trials_table

    splits = prepare_data(write_class_folders(subset.images, subset.labels, subset.names, work / "data"))
    batch = args.batch_size
    train = ArrayBatches(load_images(splits.train, size), [y for _, y in splits.train], batch, shuffle=True)
    val = ArrayBatches(load_images(splits.val, size), [y for _, y in splits.val], batch)
    data = (splits, train, val, subset.names)
    start_backbone, weights_file = None, args.weights
    if args.weights is None:  # offline: both start from the same random backbone weights
        keras.utils.set_random_seed(123)
        start_backbone = build_backbone(args.backbone, (size, size, 3), layout="keras")
        weights_file = str(work / f"{args.backbone}_start.weights.h5")
        start_backbone.save_weights(weights_file)
    ours_s, ours_acc, tuner, epochs = run_ours(args, data, size, weights_file, work)
    rows = trials_table(tuner)
    print(f"[{size} px] {len(splits.train)} train, {len(splits.val)} val images, {len(subset.names)} classes; "
          f"{len(rows)} trials of up to {epochs} epochs", flush=True)
    centre = math.sqrt(LEARNING_RATE_RANGE[0] * LEARNING_RATE_RANGE[1])
    replay = [{"backbone": "resnet50", "trainable_stages": r["effective"]["trainable_stages"],
               "learning_rate": r["effective"].get("learning_rate", centre)} for r in rows]
    effective = [tuple(sorted(r["effective"].items())) for r in rows]
    assert len(set(effective)) == len(effective), f"two trials share an effective configuration: {effective}"
    for row in rows:
        phases = " ".join(f"{k} {v:.1f}" for k, v in row["phases"].items() if v >= 0.05)
        print(f"  ours  trial {row['trial_id']}: {describe(row['effective'])} -> {row['score']:.4f} "
              f"in {row['seconds']:.1f} s ({phases})", flush=True)
    plain_s, plain_acc, plain_tuner, times = run_plain(args, data, size, replay, epochs, start_backbone, work)
    plain_trials = sorted(plain_tuner.oracle.trials.items(), key=lambda item: int(item[0]))
    plain_seconds = [times.get(trial_id, float("nan")) for trial_id, _ in plain_trials]
    for (trial_id, trial), seconds in zip(plain_trials, plain_seconds, strict=True):
        print(f"  plain trial {trial_id}: {describe(trial.hyperparameters.values)} -> {trial.score:.4f} "
              f"in {seconds:.1f} s", flush=True)
    print(f"[{size} px] plain {plain_s:.1f} s, best val accuracy {plain_acc:.4f}; "
          f"ours {ours_s:.1f} s, best val accuracy {ours_acc:.4f}; speedup: {plain_s / ours_s:.2f}x", flush=True)
    per_depth = by_depth(rows, plain_seconds)
    gflops = stage_gflops(args.backbone, size)
    for depth, count, plain_depth_s, ours_depth_s in per_depth:
        ceiling = f"; caching ceiling by FLOPs {cache_ceiling(gflops, depth):.2f}x" if depth else ""
        print(f"[{size} px] depth {depth}: {count} trial(s), plain {plain_depth_s:.1f} s, ours {ours_depth_s:.1f} s, "
              f"{plain_depth_s / ours_depth_s:.2f}x{ceiling}", flush=True)
    bound = speedup_bound(plain_s, per_depth)
    print(f"[{size} px] bound: {ratio(bound)} (plain's {plain_s:.0f} s over ours' seconds on the trials that train "
          "every stage, which have no frozen prefix to cache: the speedup if every other trial of ours cost nothing)",
          flush=True)
    return plain_s, ours_s, plain_acc, ours_acc, bound


def by_depth(rows: list, plain_seconds: list) -> list:
    """[(trainable stages, trials, plain seconds, ours seconds)] per depth, over ours' `rows`
    (`trials_table`) and plain's seconds per trial in the same order (plain replays ours)."""
    totals = {}
    for row, plain in zip(rows, plain_seconds, strict=True):
        entry = totals.setdefault(int(row["effective"]["trainable_stages"]), [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += plain
        entry[2] += row["seconds"] or 0.0
    return [(depth, *totals[depth]) for depth in sorted(totals)]


def stage_gflops(backbone: str, size: int) -> list:
    """Forward GFLOPs per image of each stage of `backbone` at `size` px, conv1 .. conv5."""
    from resnet_automl.backbones import STAGES, build_backbone, layer_gflops, stage_of

    net = build_backbone(backbone, (size, size, 3))
    totals = dict.fromkeys(STAGES, 0.0)
    for layer in net.layers:
        stage = stage_of(layer.name)
        if stage is not None:
            totals[stage] += layer_gflops(layer)
    return [totals[stage] for stage in STAGES]


def cache_ceiling(gflops: list, depth: int) -> float:
    """The most that caching the frozen prefix can speed up a trial with the last `depth` of the
    stages' forward GFLOPs `gflops` trainable: plain runs the frozen stages forward and trains the
    others (forward and backward: about 3x their forward), ours only trains the others, so
    1 + frozen / (3 x trained). 1.0 when every stage trains."""
    frozen, trained = sum(gflops[:len(gflops) - depth]), sum(gflops[len(gflops) - depth:])
    return 1.0 + frozen / (3.0 * trained)


def ratio(value: float) -> str:
    """`value` as "N.NNx", or "none" for inf (no trial trains every stage)."""
    return "none" if math.isinf(value) else f"{value:.2f}x"


def speedup_bound(plain_total: float, per_depth: list) -> float:
    """The largest speedup ours could reach on this trial list by making trials with frozen stages
    cheaper: plain's total over ours' seconds on the trials that train every stage (inf without any)."""
    from resnet_automl.config.options import NUM_STAGES

    full = sum(ours for depth, _, _, ours in per_depth if depth >= NUM_STAGES)
    return plain_total / full if full > 0 else math.inf


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the tuner's line per trial
    if args.smoke:
        args.per_class, args.image_sizes, args.trials, args.epochs, args.batch_size = 8, "32", 2, 1, 16
    work_root = Path(args.workdir or tempfile.mkdtemp(prefix="search-speed-"))
    shutil.rmtree(work_root, ignore_errors=True)
    subset = load_fashion_mnist([int(c) for c in args.classes.split(",")], args.per_class, 0)
    table = []
    for size in [int(s) for s in args.image_sizes.split(",")]:
        table.append((size, *one_size(args, subset, size, work_root / f"{size}px")))
    print("\n| image size | plain Keras Tuner | ours | best val acc plain / ours | speedup | bound |")
    print("|---|---|---|---|---|---|")
    for size, plain_s, ours_s, plain_acc, ours_acc, bound in table:
        print(f"| {size} px | {plain_s:.0f} s | {ours_s:.0f} s | {plain_acc:.4f} / {ours_acc:.4f} | "
              f"{plain_s / ours_s:.2f}x | {ratio(bound)} |")
    print(f"speedup: {table[0][1] / table[0][2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
