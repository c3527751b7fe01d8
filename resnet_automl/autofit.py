"""`fit`: data -> selection -> Keras Tuner search -> final training -> export -> report.

Every stage records itself in run.json; rerunning the same call on the same run directory skips
finished stages and lets Keras Tuner resume the search (an interrupted trial is re-queued).
"""
from __future__ import annotations

import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .budget import Budget
from .data import DatasetSplits
from .data.scan import check_dataset_path
from .data.tfds_source import is_tfds_source
from .errors import ConfigError
from .options import FitOptions, budget_from
from .runinfo import default_out_dir, distributed_role, prepare_out_dir

DEFAULT_TRIALS = 6


@dataclass
class FitResult:
    """What `fit` returns.

    Attributes:
        model: the trained `keras.Model` (pixels 0..255 in, probabilities out).
        class_names: list of str.
        backbone: str, the backbone of the final model.
        best_hyperparameters: dict (backbone, trainable_stages, learning_rate).
        trials: list of dicts (hyperparameters, score, seconds, status).
        history: dict of per-epoch metrics of the final training.
        selection: list of dicts, the backbone selection table.
        report: dict, the content of report.json.
        paths: dict of str: run_dir, run_json, model_dir, version_dir, report_html, report_json, report_md.
    """

    model: object
    class_names: list
    backbone: str
    best_hyperparameters: dict
    trials: list = field(default_factory=list)
    history: dict = field(default_factory=dict)
    selection: list = field(default_factory=list)
    report: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return self.report.get("accuracy")


class _Clock:
    """The wall-clock budget of one fit call."""

    def __init__(self, budget: Budget):
        self.start = time.time()
        self.deadline = None if budget.seconds is None else self.start + budget.seconds

    def remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    def elapsed(self) -> float:
        return time.time() - self.start


def _auto_image_size(splits: DatasetSplits, gpu: bool) -> int:
    sides = []
    for path, _ in splits.train[:: max(1, len(splits.train) // 200)]:
        with Image.open(path) as image:
            sides.append(min(image.size))
    side = int(np.ceil(statistics.median(sides) / 32.0) * 32)
    return int(min(max(side, 64), 224 if gpu else 128))


def _configure_device(log) -> tuple:
    """Mixed precision on GPU, MirroredStrategy on several GPUs; fp32 on CPU."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass
    if not gpus:
        keras.mixed_precision.set_global_policy("float32")
        return None, 1, "cpu"
    keras.mixed_precision.set_global_policy("mixed_float16")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        log(f"[device] {len(gpus)} GPUs: MirroredStrategy, mixed precision")
        return strategy, strategy.num_replicas_in_sync, "multi-gpu"
    log("[device] 1 GPU: mixed precision (float16 compute, float32 head)")
    return None, 1, "gpu"


def fit(data, *, out=None, budget=None, overwrite: bool = False, verbose: int = 1, log=None, recipe=None,
        **options) -> FitResult:
    """Train a classifier on `data` within `budget` and export it for TF Serving.

    Args:
        data: a folder of class subfolders, a `train/ val/ test/` tree, or "tfds:NAME".
        out: run directory. Defaults to `runs/<dataset folder name>`; rerunning resumes.
        budget: a `Budget`, a dict of its fields, or a preset name ("cpu-quick", "edge",
            "balanced", "max-accuracy"). Defaults to no limits.
        overwrite: bool, start again instead of resuming. Defaults to False.
        verbose: int, 0 silent, 1 one line per stage and trial, 2 Keras progress bars too.
        log: callable taking one line; defaults to printing to stdout when `verbose`.
        recipe: str or None, the recipe file the options came from (recorded in run.json).
        **options: any field of `FitOptions` (backbone, weights, image_size, epochs, final_epochs,
            final_data, batch_size, tuner, trainable_stages, learning_rate_range, seed, val_fraction, test_fraction).

    Example:
        >>> result = fit("photos/", budget=Budget(minutes=30), weights=None)
        >>> result.paths["version_dir"]
    """
    unknown = sorted(set(options) - set(FitOptions.field_names()))
    if unknown:
        raise ConfigError(f"Unknown fit option(s) {unknown}; valid options are {FitOptions.field_names()}.")
    opts = FitOptions(**options)
    budget = budget_from(budget)
    # Library noise that says nothing about the user's run: Keras warns on every fit over a
    # tf.data.Dataset (already shuffled by us), scikit-learn's Gaussian process on tiny searches.
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    warnings.filterwarnings("ignore", message=".*optimal value found for dimension.*")
    if log is None:
        log = (lambda line: print(line, flush=True)) if verbose else (lambda line: None)
    clock = _Clock(budget)
    if not is_tfds_source(data):
        check_dataset_path(data)  # before the run directory is created: a typo leaves nothing behind
    if distributed_role() == "worker":
        overwrite = False  # only the chief may reset the shared run directory
    out = prepare_out_dir(out or default_out_dir(data), overwrite)
    from .interrupts import remember_ctrl_c
    from .runner import run_pipeline  # TensorFlow loads here, after the cheap checks

    with remember_ctrl_c():
        return run_pipeline(data, out, opts, budget, clock, log=log, verbose=verbose, recipe=recipe)


def fit_from_cli(args) -> int:
    """The `resnet-automl fit` command: flags (and a recipe) -> `fit`."""
    from .recipes import resolve_cli_options

    data, out, options, budget = resolve_cli_options(args)
    result = fit(data, out=out, budget=budget, overwrite=args.overwrite, verbose=1, recipe=args.recipe, **options)
    if result.model is None:  # a distributed worker: the chief trains, exports and reports
        print(f"worker done: ran trials in {result.paths['run_dir']}", file=sys.stdout)
        return 0
    print(f"done: test accuracy {result.report['accuracy']:.4f}; model {result.paths['version_dir']}; "
          f"report {result.paths['report_html']}", file=sys.stdout)
    return 0


__all__ = ["FitResult", "fit", "fit_from_cli"]
