"""The option schema: one row per option of `fit`, of `Budget` and of recipe files.

Each row names an option, the object it belongs to, its recipe section, the kind of value it
accepts, its command-line flag and help. `FitOptions` and `Budget` validate their fields with it,
`recipes` derives its sections and flag mapping from it, and the CLI generates `fit`'s option flags
from it, so an option is declared once and checked the same way from Python, a recipe and the
command line. Errors read like scikit-learn's parameter validation: "The 'epochs' parameter of fit
must be a positive integer or None. Got 0 instead."

Imports only the standard library and `resnet_automl.errors`, so the CLI can build `--help` from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from resnet_automl.errors import ConfigError

#: Values of `FitOptions.final_data`.
FINAL_DATA = ("auto", "train", "train+val")
#: Values of `FitOptions.task`: auto (multi-label when a manifest row has several labels), or forced.
TASKS = ("auto", "multiclass", "multilabel")
#: Values of `FitOptions.tuner` (Keras Tuner oracles).
TUNERS = ("bayesian", "hyperband", "random")
#: Values of `FitOptions.precision` (Keras dtype policies, or "auto").
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: Values of `FitOptions.optimizer`.
OPTIMIZERS = ("auto", "adam", "sgd")
#: Values of `FitOptions.export_formats`: the TF Serving SavedModel (always written) and the files for other runtimes.
EXPORT_FORMATS = ("savedmodel", "litert", "litert-int8", "onnx")
#: Smallest `image_size` (px): the ImageNet-style ResNets downsample 32x, to a single pixel at 16 px; the
#: CIFAR-style ones 4-8x. Fashion-MNIST's 28 px images train at 28 px from random initialisation.
MIN_IMAGE_SIZE = 16
#: Stages of every backbone (the stem `conv1`, then `conv2`..`conv5`): `trainable_stages` is 0..NUM_STAGES.
NUM_STAGES = 5

#: How each owner is named in error messages.
OWNER_NAMES = {"fit": "fit", "budget": "Budget", "recipe": "the recipe"}


def must_be(subject: str, expected: str, got: str) -> str:
    """The sentence of every option error (scikit-learn's shape), from Python, recipes and the CLI alike:
    "<subject> must be <expected>. Got <got>." """
    return f"{subject} must be {expected}. Got {got}."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_stage_list(value) -> bool:
    try:
        stages = list(value)
    except TypeError:
        return False
    return bool(stages) and all(_is_int(k) and 0 <= k <= NUM_STAGES for k in stages)


def _is_range(value) -> bool:
    try:
        low, high = value
    except (TypeError, ValueError):
        return False
    return _is_number(low) and _is_number(high) and 0 < low < high


def _anything(value) -> bool:
    return True


def _as_given(value):
    return value


@dataclass(frozen=True)
class Kind:
    """The values an option accepts, from Python, a recipe and the command line.

    Attributes:
        checks: tuple of (expected, predicate) pairs, tested in order; a value fails on the first
            predicate that returns False, and the error says it must be that `expected` phrase.
        toml_types: tuple of types, the Python types a recipe's TOML value may have (an int is
            accepted where float is listed; a bool only where bool is).
        parse: callable, command-line text -> value (text that does not parse is checked as text,
            so it fails with the same sentence as any other bad value). Default `str`.
        choices: tuple or None, the values `--help` lists. Default None.
        from_toml: callable, recipe value -> the value `fit` takes (e.g. a TOML list -> tuple).
            Default: the value itself.
    """

    checks: tuple
    toml_types: tuple
    parse: Callable = str
    choices: tuple | None = None
    from_toml: Callable = _as_given

    def problem(self, value) -> str | None:
        """The `expected` phrase of the first check `value` fails, or None when it passes all."""
        return next((expected for expected, ok in self.checks if not ok(value)), None)

    def narrowed(self, expected: str, ok: Callable) -> Kind:
        """This kind with one more check after its own."""
        return replace(self, checks=(*self.checks, (expected, ok)))

    def accepts_toml(self, value) -> bool:
        """Whether a recipe value has one of `toml_types`."""
        if isinstance(value, bool):
            return bool in self.toml_types
        return isinstance(value, self.toml_types) or (float in self.toml_types and isinstance(value, int))

    def toml_type_names(self) -> str:
        """`toml_types` as a recipe error names them: "int or float"."""
        return " or ".join(t.__name__ for t in self.toml_types)


POSITIVE_INT_OR_NONE = Kind((("a positive integer or None", lambda v: v is None or (_is_int(v) and v > 0)),),
                            (int,), parse=int)
POSITIVE_NUMBER_OR_NONE = Kind(
    (("a positive number or None", lambda v: v is None or (_is_number(v) and math.isfinite(v) and v > 0)),),
    (int, float), parse=float)
INTEGER = Kind((("an integer", _is_int),), (int,), parse=int)
NON_NEGATIVE_INT = Kind((("a non-negative integer", lambda v: _is_int(v) and v >= 0),), (int,), parse=int)
BOOL = Kind((("True or False", lambda v: isinstance(v, bool)),), (bool,))
SPLIT_FRACTION = Kind((("in (0, 0.5)", lambda v: _is_number(v) and 0 < v < 0.5),), (float,), parse=float)
STAGE_LIST_OR_NONE = Kind(((f"a non-empty list of integers in 0..{NUM_STAGES}",
                            lambda v: v is None or _is_stage_list(v)),), (list,))
RANGE_OR_NONE = Kind((("(low, high) with 0 < low < high", lambda v: v is None or _is_range(v)),), (list,),
                     from_toml=tuple)
IMAGE_SIZE = POSITIVE_INT_OR_NONE.narrowed(
    f"at least {MIN_IMAGE_SIZE} (the ImageNet-style ResNets downsample 32x, to 1 px at {MIN_IMAGE_SIZE})",
    lambda v: v is None or v >= MIN_IMAGE_SIZE)
TEXT = Kind((("a string", lambda v: isinstance(v, str)),), (str,))
TEXT_OR_NONE = Kind((("a non-empty string or None", lambda v: v is None or (isinstance(v, str) and v != "")),), (str,))


def _column(text: str):
    """Command-line text of a manifest column: a 0-based number ("1" -> 1) or a header name."""
    return int(text) if text.strip().isdigit() else text


COLUMN_OR_NONE = Kind((("a column name, a 0-based column number or None",
                        lambda v: v is None or (isinstance(v, str) and v.strip() != "") or (_is_int(v) and v >= 0)),),
                      (str, int), parse=_column)


def _format_list(value) -> tuple | str:
    """Command-line text "litert,onnx" -> ("litert", "onnx") (the schema then checks the names)."""
    names = tuple(name.strip().lower() for name in value.split(",") if name.strip())
    return names or value


def _is_format_list(value) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(v in EXPORT_FORMATS for v in value)


FORMAT_LIST = Kind(((f"a non-empty list of names from {EXPORT_FORMATS} (comma-separated on the command line)",
                     _is_format_list),), (list,), parse=_format_list, from_toml=tuple)


def one_of(choices: tuple) -> Kind:
    """A kind that accepts exactly the strings in `choices`."""
    return Kind(((f"one of {choices}", lambda v: isinstance(v, str) and v in choices),), (str,), choices=choices)


def checked_later(expected: str, toml_types: tuple) -> Kind:
    """A kind whose values are checked where they are used (the backbone registry, the weights loader):
    any Python value passes here, a recipe gives one of `toml_types`."""
    return Kind(((expected, _anything),), toml_types)


@dataclass(frozen=True)
class Option:
    """One option: where it lives, what it accepts, how the command line sets it.

    Attributes:
        name: str, the field of its owner and the key in its recipe section.
        owner: str, "fit" (a `FitOptions` field), "budget" (a `Budget` field) or "recipe" (a recipe
            key that is neither, such as the data source).
        section: str, the recipe section ([data], [budget], [search], [train] or [export]).
        kind: `Kind`, the values it accepts.
        flag: str or None, its `resnet-automl fit` flag; None: settable only from Python and recipes.
        help: str, the flag's help text (for an option without a flag: what it means).
    """

    name: str
    owner: str
    section: str
    kind: Kind
    flag: str | None
    help: str

    @property
    def dest(self) -> str | None:
        """The argparse attribute of `flag` ("--max-trials" -> "max_trials"), or None."""
        return self.flag[2:].replace("-", "_") if self.flag else None

    def error(self, value) -> str | None:
        """The message for a bad `value`, or None when it is accepted."""
        problem = self.kind.problem(value)
        if problem is None:
            return None
        return must_be(f"The {self.name!r} parameter of {OWNER_NAMES[self.owner]}", problem, f"{value!r} instead")

    def check(self, value) -> None:
        """Raise ConfigError when `value` is not accepted."""
        message = self.error(value)
        if message is not None:
            raise ConfigError(message)

    def parse(self, text: str):
        """Command-line `text` -> the checked value (ConfigError when it is not accepted)."""
        try:
            value = self.kind.parse(text)
        except ValueError:
            value = text
        self.check(value)
        return value


_FINAL_EPOCHS_HELP = ("epochs of the final training (default: from the trials' steps; from random initialisation "
                      "under --minutes, grown into the time left)")
_WEIGHTS_HELP = ("imagenet, none, a finished run folder of resnet-automl (transfer from your own pretraining), or a "
                 ".weights.h5 file (default imagenet: downloads the backbone's ImageNet weights once into "
                 "~/.keras/models, so the first run needs the network; offline, pass none)")
_FINAL_DATA_HELP = ("what the final training learns from (default auto: train+val below 5,000 training images, else "
                    "train with early stopping on val)")

#: Every option, in recipe order: section by section, keys in the order recipe errors list them.
OPTIONS = (
    Option("source", "recipe", "data", TEXT, None,
           "folder of class subfolders, a train/ val/ test/ tree, or tfds:NAME"),
    Option("path_column", "fit", "data", COLUMN_OR_NONE, "--path-column",
           "manifest column of the image paths (default: detected from the header: path, image, filename, ...)"),
    Option("label_column", "fit", "data", COLUMN_OR_NONE, "--label-column",
           "manifest column of the labels (default: detected: label, labels, class, ...)"),
    Option("split_column", "fit", "data", COLUMN_OR_NONE, "--split-column",
           "manifest column of the split, train/val/test (default: detected: split, set, ...; none: drawn)"),
    Option("label_delimiter", "fit", "data", TEXT_OR_NONE, "--label-delimiter",
           "separator of several labels in one manifest cell, e.g. ' ' or '|' (default: none, one label per "
           "cell; a JSONL list needs none)"),
    Option("task", "fit", "data", one_of(TASKS), "--task",
           "multiclass (one label per image) or multilabel (sigmoid head; any number of labels); default auto: "
           "multilabel when a manifest row has several labels"),
    Option("allow_absolute_paths", "fit", "data", BOOL, "--allow-absolute-paths",
           "accept manifest paths that are absolute or leave the manifest's folder"),
    Option("keep_split", "fit", "data", BOOL, "--keep-split",
           "go on with the run's saved split when the data changed since it was made (default: a rerun on "
           "changed data stops and says what changed)"),
    Option("val_fraction", "fit", "data", SPLIT_FRACTION, None, "share of a class-folder tree held out for validation"),
    Option("test_fraction", "fit", "data", SPLIT_FRACTION, None, "share of a class-folder tree held out for testing"),
    Option("minutes", "budget", "budget", POSITIVE_NUMBER_OR_NONE, "--minutes",
           "wall-clock cap for the whole fit, search to report (default: none, the plan's own length)"),
    Option("max_trials", "budget", "budget", POSITIVE_INT_OR_NONE, "--max-trials",
           "number of tuner trials (default: from the search space: 6 over several frozen depths or backbones, "
           "3 over the learning rate alone, 1 from random initialisation)"),
    Option("max_params", "budget", "budget", POSITIVE_INT_OR_NONE, "--max-params",
           "cap on backbone parameters (default: none)"),
    Option("max_gflops", "budget", "budget", POSITIVE_NUMBER_OR_NONE, "--max-gflops",
           "cap on GFLOPs per image at --image-size (default: none)"),
    Option("max_latency_ms", "budget", "budget", POSITIVE_NUMBER_OR_NONE, "--max-latency-ms",
           "cap on batch-1 latency on this device (default: none)"),
    Option("backbone", "fit", "search", checked_later("'auto', a backbone name or a list of names", (str, list)),
           "--backbone", "auto, one name, or a comma-separated list (see `backbones`); default auto: the best-prior "
           "backbone that fits the budget"),
    Option("tuner", "fit", "search", one_of(TUNERS), "--tuner", "Keras Tuner search algorithm (default bayesian)"),
    Option("trainable_stages", "fit", "search", STAGE_LIST_OR_NONE, None,
           "numbers of trainable backbone stages the search tries (0..5; 5 trains all)"),
    Option("learning_rate_range", "fit", "search", RANGE_OR_NONE, None,
           "(low, high) of the log-uniform learning-rate search"),
    Option("optimizer", "fit", "search", one_of(OPTIMIZERS), "--optimizer",
           "auto (default: Adam with pretrained weights, SGD from random initialisation), adam, sgd"),
    Option("epochs", "fit", "search", POSITIVE_INT_OR_NONE, "--epochs",
           "epochs per trial (default: enough for about 120 optimiser steps, 3 to 15)"),
    Option("feature_cache", "fit", "search", BOOL, None,
           "train trials with frozen stages on cached frozen-prefix features"),
    Option("feature_cache_memory_mb", "fit", "search", NON_NEGATIVE_INT, None,
           "memory (MB) for cached features; beyond it they are read from disk"),
    Option("weights", "fit", "train", checked_later("None, 'imagenet', a run folder or a .weights.h5 file", (str,)),
           "--weights", _WEIGHTS_HELP),
    Option("image_size", "fit", "train", IMAGE_SIZE, "--image-size",
           "square input size in pixels (default: the images' median side, 64-128 px on CPU, 64-224 px on a "
           "GPU; small images from random initialisation at their own side)"),
    Option("batch_size", "fit", "train", POSITIVE_INT_OR_NONE, "--batch-size",
           "images per batch (default 32 per device)"),
    Option("final_epochs", "fit", "train", POSITIVE_INT_OR_NONE, "--final-epochs", _FINAL_EPOCHS_HELP),
    Option("final_data", "fit", "train", one_of(FINAL_DATA), "--final-data", _FINAL_DATA_HELP),
    Option("seed", "fit", "train", INTEGER, "--seed", "random seed of the split, search and training (default 0)"),
    Option("precision", "fit", "train", one_of(PRECISIONS), "--precision",
           "dtype policy (default auto: float32 on CPU, mixed bfloat16 on recent GPUs)"),
    Option("export_formats", "fit", "export", FORMAT_LIST, "--export-formats",
           "formats to write and check: savedmodel (always), litert, litert-int8, onnx (default savedmodel; "
           "LiteRT and ONNX need `pip install 'resnet-automl[edge]'`)"),
    Option("out", "recipe", "export", TEXT, "--out",
           "run directory (default: runs/<dataset folder name>); rerun to resume"),
)
#: name -> `Option`; names are unique across owners.
BY_NAME = {option.name: option for option in OPTIONS}


def options_of(owner: str) -> tuple:
    """The rows of one owner ("fit", "budget" or "recipe"), in schema order."""
    return tuple(option for option in OPTIONS if option.owner == owner)


def recipe_sections() -> dict:
    """section -> key -> `Option`, in schema order."""
    sections: dict = {}
    for option in OPTIONS:
        sections.setdefault(option.section, {})[option.name] = option
    return sections


def check_fields(instance, owner: str) -> None:
    """Validate the fields of `instance` (a `FitOptions` or `Budget`) with `owner`'s rows: ConfigError
    naming the first bad one."""
    for option in options_of(owner):
        option.check(getattr(instance, option.name))
