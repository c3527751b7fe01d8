"""`FitOptions`: every option of `fit`, validated; recipes and CLI flags map onto it one-to-one.

Imports nothing heavy (no Keras), so the CLI can use its constants in `--help`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from resnet_automl.config.budget import Budget
from resnet_automl.errors import ConfigError

#: Values of `FitOptions.final_data`.
FINAL_DATA = ("auto", "train", "train+val")
#: Values of `FitOptions.tuner` (Keras Tuner oracles).
TUNERS = ("bayesian", "hyperband", "random")
#: Values of `FitOptions.precision` (Keras dtype policies, or "auto").
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: Below this many training images a dataset counts as small (backbone ranking, final_data="auto").
SMALL_DATA_IMAGES = 5000
#: Values of `FitOptions.optimizer`.
OPTIMIZERS = ("auto", "adam", "sgd")
#: Default log-uniform learning-rate ranges of the search, per optimizer.
LEARNING_RATE_RANGES = {"adam": (1e-4, 1e-2), "sgd": (0.05, 0.2)}


def backbone_names(requested) -> list:
    """The names in a `backbone` value (a name, a comma-separated string, or a list of either),
    stripped, in order; as written ("auto" stays "auto")."""
    items = [requested] if isinstance(requested, str) else list(requested)
    return [n.strip() for item in items for n in str(item).split(",") if n.strip()]


#: Smallest `image_size` (px): the ImageNet-style ResNets downsample 32x, to a single pixel at 16 px; the
#: CIFAR-style ones 4-8x. Fashion-MNIST's 28 px images train at 28 px from random initialisation.
MIN_IMAGE_SIZE = 16


@dataclass
class FitOptions:
    """Options of one fit (the budget is separate).

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
            than training everything (benchmarks/small_data_quality.py, issue 5 note).
        learning_rate_range: (low, high) for the log-uniform learning-rate search, or None (default):
            (1e-4, 1e-2) for Adam, (0.05, 0.2) for SGD (centred on the CIFAR recipe's 0.1: trials
            of a few epochs from scratch rank learning rates by noise, see the issue 19 note).
        optimizer: "auto" (default), "adam" or "sgd". "auto" is Adam with pretrained weights and SGD
            with Nesterov momentum 0.9 and weight decay 5e-4 from random initialisation, the recipe
            of the CIFAR ResNets: on 600 Fashion-MNIST images a ResNet-20 scored 0.817 on 2,000
            unseen images with it and 0.797 with Adam (same 60 epochs, issue 19 note).
        seed: int, seed of split, search and training. Default 0.
        val_fraction, test_fraction: floats, shares held out of a class-folder tree. Default 0.15.
        feature_cache: bool, train trials with frozen stages on cached frozen-prefix features
            (DIR/cache). Default True.
        feature_cache_memory_mb: int, memory for cached features; beyond it they are read from
            disk. Default 2048.
        precision: "auto" (default: float32 on CPU, mixed bfloat16 on GPUs from Ampere on, mixed
            float16 on older GPUs), "float32", "mixed_bfloat16" or "mixed_float16".
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
    feature_cache_memory_mb: int = 2048
    precision: str = "auto"

    def __post_init__(self):
        for name in ("image_size", "epochs", "final_epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(f"The {name!r} parameter of fit must be a positive integer or None. "
                                  f"Got {value!r} instead.")
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"The 'image_size' parameter of fit must be at least {MIN_IMAGE_SIZE} (the ImageNet-style "
                              f"ResNets downsample 32x, to 1 px at {MIN_IMAGE_SIZE}). Got {self.image_size!r} instead.")
        if self.final_data not in FINAL_DATA:
            raise ConfigError(f"The 'final_data' parameter of fit must be one of {FINAL_DATA}. "
                              f"Got {self.final_data!r} instead.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"The 'precision' parameter of fit must be one of {PRECISIONS}. "
                              f"Got {self.precision!r} instead.")
        if self.tuner not in TUNERS:
            raise ConfigError(f"The 'tuner' parameter of fit must be one of {TUNERS}. Got {self.tuner!r} instead.")
        if isinstance(self.weights, str) and self.weights.lower() == "none":
            self.weights = None
        if self.trainable_stages is not None:
            stages = list(self.trainable_stages)
            if not stages or any(not isinstance(k, int) or not 0 <= k <= 5 for k in stages):
                raise ConfigError("The 'trainable_stages' parameter of fit must be a non-empty list of integers "
                                  f"in 0..5. Got {self.trainable_stages!r} instead.")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"The 'optimizer' parameter of fit must be one of {OPTIMIZERS}. "
                              f"Got {self.optimizer!r} instead.")
        try:
            low, high = self.learning_rate_range if self.learning_rate_range is not None else (1, 2)
        except (TypeError, ValueError):
            low, high = 0, 0
        if not 0 < low < high:
            raise ConfigError("The 'learning_rate_range' parameter of fit must be (low, high) with "
                              f"0 < low < high. Got {self.learning_rate_range!r} instead.")
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ConfigError(f"The {name!r} parameter of fit must be in (0, 0.5). "
                                  f"Got {getattr(self, name)!r} instead.")

    def final_uses_val(self, train_images: int) -> bool:
        """Whether the final training also learns from the validation images."""
        if self.final_data == "auto":
            return train_images < SMALL_DATA_IMAGES
        return self.final_data == "train+val"

    def resolved_optimizer(self) -> str:
        """"adam" or "sgd": `optimizer`, with "auto" decided by the weights."""
        if self.optimizer != "auto":
            return self.optimizer
        pretrained = not (self.weights is None or str(self.weights).lower() == "none")
        return "adam" if pretrained else "sgd"

    def resolved_learning_rate_range(self) -> tuple:
        """`learning_rate_range`, or the optimizer's default range."""
        return tuple(self.learning_rate_range or LEARNING_RATE_RANGES[self.resolved_optimizer()])

    def stage_choices(self) -> list:
        if self.trainable_stages is not None:
            return sorted(set(self.trainable_stages))
        return [5] if self.weights is None else [0, 1, 2, 3, 5]

    def backbones_named(self) -> int:
        """How many backbones `backbone` names (a list, or a comma-separated string); "auto": 1."""
        return max(1, len(backbone_names(self.backbone)))

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


