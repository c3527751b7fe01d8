"""Recipes: TOML files whose sections map one-to-one onto `fit`'s options and `Budget`.

TOML because Python >= 3.11 reads it with the standard library (`tomllib`; `tomli` on 3.10), it has
comments for the "when to use" block, and typed values (ints, floats, lists) without YAML's
surprises. Unknown sections or keys and wrong types are errors naming the file, section and key.
"""
from __future__ import annotations

import sys
from pathlib import Path

from resnet_automl.config.budget import Budget
from resnet_automl.errors import ConfigError
from resnet_automl.config.options import FitOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: section -> key -> accepted Python types.
SECTIONS = {
    "data": {"source": (str,), "val_fraction": (float,), "test_fraction": (float,)},
    "budget": {"minutes": (int, float), "max_trials": (int,), "max_params": (int,), "max_gflops": (int, float),
               "max_latency_ms": (int, float)},
    "search": {"backbone": (str, list), "tuner": (str,), "trainable_stages": (list,),
               "learning_rate_range": (list,), "optimizer": (str,), "epochs": (int,), "feature_cache": (bool,),
               "feature_cache_memory_mb": (int,)},
    "train": {"weights": (str,), "image_size": (int,), "batch_size": (int,), "final_epochs": (int,),
              "final_data": (str,), "seed": (int,), "precision": (str,)},
    "export": {"out": (str,)},
}
#: CLI flag (argparse dest) -> (section, key).
CLI_FLAGS = {"minutes": ("budget", "minutes"), "max_trials": ("budget", "max_trials"),
             "max_params": ("budget", "max_params"), "max_gflops": ("budget", "max_gflops"),
             "max_latency_ms": ("budget", "max_latency_ms"), "backbone": ("search", "backbone"),
             "tuner": ("search", "tuner"), "optimizer": ("search", "optimizer"), "epochs": ("search", "epochs"),
             "final_epochs": ("train", "final_epochs"), "weights": ("train", "weights"),
             "image_size": ("train", "image_size"), "batch_size": ("train", "batch_size"),
             "final_data": ("train", "final_data"), "seed": ("train", "seed"), "precision": ("train", "precision"),
             "out": ("export", "out")}


def load_recipe(path) -> dict:
    """Read and validate a recipe file; return {section: {key: value}}."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Recipe file {str(path)!r} does not exist. See the recipes/ folder for examples.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Recipe file {str(path)!r} is not valid TOML: {exc}.") from None
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"Recipe {str(path)!r}: unknown section [{section}]. Valid sections: "
                              f"{', '.join(SECTIONS)}.")
        if not isinstance(values, dict):
            raise ConfigError(f"Recipe {str(path)!r}: {section!r} must be a [section] table.")
        for key, value in values.items():
            allowed = SECTIONS[section]
            if key not in allowed:
                raise ConfigError(f"Recipe {str(path)!r}: unknown key {key!r} in [{section}]. Valid keys: "
                                  f"{', '.join(allowed)}.")
            types = allowed[key]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                if not (float in types and isinstance(value, int) and not isinstance(value, bool)):
                    names = " or ".join(t.__name__ for t in types)
                    raise ConfigError(f"Recipe {str(path)!r}: [{section}] {key} must be {names}. "
                                      f"Got {value!r} ({type(value).__name__}).")
    try:  # values: the same checks as fit's own arguments
        _, _, options, _ = recipe_to_fit_arguments(data)
        FitOptions(**options)
    except ConfigError as exc:
        raise ConfigError(f"Recipe {str(path)!r}: {exc}") from None
    return data


def recipe_to_fit_arguments(recipe: dict) -> tuple:
    """{section: {key: value}} -> (data source or None, out or None, fit options dict, Budget)."""
    options = {}
    for section in ("data", "search", "train"):
        for key, value in recipe.get(section, {}).items():
            if key != "source":
                options[key] = value
    if "learning_rate_range" in options:
        options["learning_rate_range"] = tuple(options["learning_rate_range"])
    budget = Budget(**recipe.get("budget", {}))
    return recipe.get("data", {}).get("source"), recipe.get("export", {}).get("out"), options, budget


def resolve_cli_options(args) -> tuple:
    """Merge `--recipe` with CLI flags (flags win): return (data, out, options, budget)."""
    recipe = load_recipe(args.recipe) if args.recipe else {}
    for flag, (section, key) in CLI_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            recipe.setdefault(section, {})[key] = value
    if "backbone" in recipe.get("search", {}) and isinstance(recipe["search"]["backbone"], str) \
            and "," in recipe["search"]["backbone"]:
        recipe["search"]["backbone"] = [n.strip() for n in recipe["search"]["backbone"].split(",") if n.strip()]
    source, out, options, budget = recipe_to_fit_arguments(recipe)
    data = args.data or source
    if data is None:
        raise ConfigError("No data given: pass DATA (a folder or tfds:NAME) or a recipe whose [data] section "
                          "has `source`.")
    return data, out, options, budget
