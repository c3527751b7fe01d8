"""`FitOptions`: every option of `fit`, validated by the option schema (`schema.OPTIONS`), from which
recipes and CLI flags are derived.

Imports nothing heavy (no Keras), so the CLI can use its constants in `--help`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from resnet_automl.config.budget import Budget
from resnet_automl.config.schema import (
    EXPORT_FORMATS,
    FINAL_DATA,
    FORMAT_LIST,
    MIN_IMAGE_SIZE,
    NUM_STAGES,
    OPTIMIZERS,
    PRECISIONS,
    TUNERS,
    check_fields,
)
from resnet_automl.errors import ConfigError

__all__ = ["EXPORT_FORMATS", "FINAL_DATA", "IN_MEMORY_LIMIT_BYTES", "MIN_IMAGE_SIZE",
           "NUM_STAGES", "OPTIMIZERS", "PRECISIONS", "TUNERS", "FitOptions", "backbone_names",
           "budget_from", "canonical_weights"]

#: Bytes kept in memory by default, per split of decoded images and for cached features; beyond it
#: they stay memory-mapped on disk, so memory is flat in the dataset size.
IN_MEMORY_LIMIT_BYTES = 2 * 2**30


def canonical_weights(weights):
    """The one reading of a `weights` argument's spelling: None for random initialisation (None or
    "none", any case), "imagenet" (any case), or the run folder or file as given."""
    if isinstance(weights, str) and weights.strip().lower() in ("none", "imagenet"):
        return None if weights.strip().lower() == "none" else "imagenet"
    return weights


def backbone_names(requested) -> list:
    """The names in a `backbone` value (a name, a comma-separated string, or a list of either),
    stripped, in order; as written ("auto" stays "auto")."""
    items = [requested] if isinstance(requested, str) else list(requested)
    return [n.strip() for item in items for n in str(item).split(",") if n.strip()]


@dataclass
class FitOptions:
    """Options of one fit (the budget is separate), validated on construction by the rows of
    `schema.OPTIONS` whose owner is "fit" (one row per field).

    Attributes:
        backbone: "auto", a registry name, or a list of names (searched by the tuner). Default "auto".
        weights: "imagenet", None (random initialisation), a finished run folder of this package
            (its final classifier's backbone) or a `.weights.h5` file (a classifier's or a
            backbone's, written by this package or saved from a registry backbone). Default "imagenet".
        image_size: int or None; None takes a pretrained run's (or weights file's) image size, else
            picks from the data (median short side rounded up to a multiple of 32, within 64..128 on
            CPU and 64..224 on GPU; from random initialisation, images of 24-32 px at their own size,
            smaller ones at 32).
            Default None.
        epochs: int or None, epochs per trial; None: enough for 120 optimiser steps, within 3..15.
        final_epochs: int or None, epochs of the final training; None: 2 x epochs, and from random
            initialisation with automatic `epochs` at least 2,000 optimiser steps (within 20 x epochs),
            from pretrained weights 500 (within 10 x epochs).
        final_data: "auto" (default), "train" or "train+val": what the final training learns from.
            "train" keeps val for early stopping and for choosing between the final model and the
            best trial's; "train+val" adds the validation images (a fixed number of epochs, no
            early stopping; the test set stays unseen). "auto" is "train+val" below 5,000
            training images, where 15% more images is worth more than early stopping.
        batch_size: int or None; None: 32 per device (x replicas on several GPUs).
        tuner: "bayesian" (default), "hyperband" or "random".
        trainable_stages: list of ints in 0..5 or None; None searches [0, 1, 2, 3, 5] with
            pretrained weights (ImageNet or a file) and trains all stages (5) from random
            initialisation, where freezing only fixes random filters: on 400 Fashion-MNIST images
            every frozen depth tried (2, 3, 4) scored 0.6-0.8 points lower on 1,000 unseen images
            than training everything (benchmarks/small_data_quality.py).
        learning_rate_range: (low, high) for the log-uniform learning-rate search, or None (default):
            (1e-4, 1e-2) for Adam, (0.05, 0.2) for SGD (centred on the CIFAR recipe's 0.1: trials
            of a few epochs from scratch rank learning rates by noise).
        optimizer: "auto" (default), "adam" or "sgd". "auto" is Adam with pretrained weights and SGD
            with Nesterov momentum 0.9 and weight decay 5e-4 from random initialisation, the recipe
            of the CIFAR ResNets: on 600 Fashion-MNIST images a ResNet-20 scored 0.817 on 2,000
            unseen images with it and 0.797 with Adam (same 60 epochs).
        seed: int, seed of split, search and training. Default 0.
        val_fraction, test_fraction: floats, shares held out of a class-folder tree. Default 0.15.
        feature_cache: bool, train trials with frozen stages on cached frozen-prefix features
            (DIR/cache). Default True.
        feature_cache_memory_mb: int >= 0, memory for cached features; beyond it they are read from
            disk. Default 2048.
        precision: "auto" (default: float32 on CPU, mixed bfloat16 on GPUs from Ampere on, mixed
            float16 on older GPUs), "float32", "mixed_bfloat16" or "mixed_float16".
        export_formats: tuple of names from `EXPORT_FORMATS`, or one str of them separated by commas
            (as on the command line): "savedmodel" (the TF Serving model,
            always written), "litert" (float32 .tflite), "litert-int8" (full-integer .tflite, uint8
            input, calibrated on training images) and "onnx". Default ("savedmodel",).
        path_column, label_column, split_column: str (a header name), int (a 0-based column of a
            file without header) or None (default: detected from the header) for a CSV / JSON Lines
            manifest (`data.manifest`).
        label_delimiter: str or None, separator of several labels in one manifest cell. Default None.
        allow_absolute_paths: bool, accept manifest paths that are absolute or leave the manifest's
            folder. Default False.
        task: "auto" (default: "multilabel" when a manifest row has several labels, else
            "multiclass"), "multiclass" (softmax, one label per image) or "multilabel" (sigmoid
            head, binary cross-entropy, per-label thresholds; needs a manifest).
        keep_split: bool, go on with the run's saved split when the data changed since it was made.
            Default False: a rerun on changed data stops with a message naming what changed.
    """

    backbone: object = "auto"
    weights: object = "imagenet"
    image_size: int | None = None
    epochs: int | None = None
    final_epochs: int | None = None
    final_data: str = "auto"
    batch_size: int | None = None
    tuner: str = "bayesian"
    trainable_stages: list | None = None
    learning_rate_range: tuple | None = None
    optimizer: str = "auto"
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    feature_cache: bool = True
    feature_cache_memory_mb: int = IN_MEMORY_LIMIT_BYTES // 2**20
    precision: str = "auto"
    export_formats: tuple = ("savedmodel",)
    path_column: str | int | None = None
    label_column: str | int | None = None
    split_column: str | int | None = None
    label_delimiter: str | None = None
    allow_absolute_paths: bool = False
    task: str = "auto"
    keep_split: bool = False

    def __post_init__(self):
        self.weights = canonical_weights(self.weights)
        if isinstance(self.export_formats, str):  # "savedmodel,onnx", read as the --export-formats flag reads it
            self.export_formats = FORMAT_LIST.parse(self.export_formats)
        check_fields(self, "fit")
        # one spelling: "savedmodel" first (always written), then the others in EXPORT_FORMATS order
        self.export_formats = tuple(name for name in EXPORT_FORMATS
                                    if name == "savedmodel" or name in self.export_formats)

    def backbones_named(self) -> int:
        """How many backbones `backbone` names (a list, or a comma-separated string); "auto": 1."""
        return max(1, len(backbone_names(self.backbone)))

    def manifest_columns(self) -> dict:
        """The keyword arguments of `data.ManifestColumns` these options give."""
        return {"path": self.path_column, "label": self.label_column, "split": self.split_column,
                "label_delimiter": self.label_delimiter, "allow_absolute_paths": self.allow_absolute_paths,
                "task": self.task}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list:
        return [f.name for f in fields(cls)]


def budget_from(value) -> Budget:
    """Accept a `Budget`, a dict of its fields, a preset name or None (no limits)."""
    if value is None:
        return Budget()
    if isinstance(value, Budget):
        return value
    if isinstance(value, str):
        return Budget.preset(value)
    if isinstance(value, dict):
        return Budget(**value)
    raise ConfigError(f"The 'budget' parameter of fit must be a Budget, a dict or a preset name. Got {value!r}.")


