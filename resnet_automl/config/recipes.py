"""Recipes: TOML files whose sections map one-to-one onto `fit`'s options and `Budget`, as the option
schema (`schema.OPTIONS`) lays them out.

TOML because Python >= 3.11 reads it with the standard library (`tomllib`; `tomli` on 3.10), it has
comments for the "when to use" block, and typed values (ints, floats, lists) without YAML's
surprises. Unknown sections or keys and wrong types are errors naming the file, section and key.
"""
from __future__ import annotations

import sys
from pathlib import Path

from resnet_automl.config.budget import Budget
from resnet_automl.config.options import FitOptions
from resnet_automl.config.schema import OPTIONS, must_be, recipe_sections
from resnet_automl.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_ROWS = recipe_sections()
#: section -> key -> accepted Python types (of the TOML value).
SECTIONS = {section: {key: option.kind.toml_types for key, option in rows.items()} for section, rows in _ROWS.items()}
#: CLI flag (argparse dest) -> (section, key).
CLI_FLAGS = {option.dest: (option.section, option.name) for option in OPTIONS if option.flag}


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
        _check_section(path, section, values)
    try:  # values: the same checks as fit's own arguments
        _, _, options, _ = recipe_to_fit_arguments(data)
        FitOptions(**options)
    except ConfigError as exc:
        raise ConfigError(f"Recipe {str(path)!r}: {exc}") from None
    return data


def _check_section(path: Path, section: str, values) -> None:
    """Unknown sections and keys, and values of a TOML type the key does not take, are errors."""
    if section not in _ROWS:
        raise ConfigError(f"Recipe {str(path)!r}: unknown section [{section}]. Valid sections: {', '.join(_ROWS)}.")
    if not isinstance(values, dict):
        raise ConfigError(f"Recipe {str(path)!r}: {section!r} must be a [section] table.")
    rows = _ROWS[section]
    for key, value in values.items():
        if key not in rows:
            raise ConfigError(f"Recipe {str(path)!r}: unknown key {key!r} in [{section}]. Valid keys: "
                              f"{', '.join(rows)}.")
        kind = rows[key].kind
        if not kind.accepts_toml(value):
            got = f"{value!r} ({type(value).__name__})"
            raise ConfigError(f"Recipe {str(path)!r}: {must_be(f'[{section}] {key}', kind.toml_type_names(), got)}")


def recipe_to_fit_arguments(recipe: dict) -> tuple:
    """{section: {key: value}} -> (data source or None, out or None, fit options dict, Budget).

    Each key goes to the owner its schema row names; unknown keys are errors.
    """
    values: dict = {"fit": {}, "budget": {}, "recipe": {}}
    for section, entries in recipe.items():
        for key, value in entries.items():
            option = _ROWS.get(section, {}).get(key)
            if option is None:
                raise ConfigError(f"Unknown recipe key {key!r} in [{section}].")
            values[option.owner][key] = option.kind.from_toml(value)
    recipe_values = values["recipe"]
    return recipe_values.get("source"), recipe_values.get("out"), values["fit"], Budget(**values["budget"])


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
