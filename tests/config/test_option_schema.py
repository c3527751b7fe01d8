"""The option schema: one row per option, matching FitOptions, Budget, the recipe sections and the CLI."""
from __future__ import annotations

import argparse
import re
from dataclasses import fields

import pytest

from resnet_automl.cli.main import build_parser
from resnet_automl.config.budget import Budget
from resnet_automl.config.options import FitOptions
from resnet_automl.config.recipes import CLI_FLAGS, SECTIONS, load_recipe, recipe_to_fit_arguments
from resnet_automl.config.schema import BY_NAME, OPTIONS, OWNER_NAMES, options_of
from resnet_automl.errors import ConfigError

#: `fit`'s arguments that are about the run, not options of fit or Budget: written by hand in the CLI.
RUN_ARGUMENTS = {"help", "data", "recipe", "backend", "overwrite", "chief", "worker_id"}
#: The flags of `resnet-automl fit` that set an option (a public interface: scripts use them).
OPTION_FLAGS = {"--out", "--minutes", "--max-trials", "--max-params", "--max-gflops", "--max-latency-ms", "--backbone",
                "--tuner", "--optimizer", "--epochs", "--weights", "--image-size", "--batch-size", "--final-epochs",
                "--final-data", "--seed", "--precision", "--export-formats", "--path-column", "--label-column",
                "--split-column", "--label-delimiter", "--allow-absolute-paths", "--task", "--keep-split"}
#: A value each flag accepts, where "7" is not one.
GOOD_TEXT = {"image_size": "32", "backbone": "resnet18", "weights": "imagenet", "export_formats": "savedmodel,onnx"}
#: The sentence every option error is written in, from Python, a recipe or the command line.
SHAPE = re.compile(r"(?P<subject>.+) must be (?P<expected>.+)\. Got (?P<got>.+)\.")


def _fit_actions() -> list:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["fit"]._actions


def _cli_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["fit", "DATA", *argv])
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _recipe_error(tmp_path, text) -> str:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        recipe_to_fit_arguments(load_recipe(path))
    prefix = f"Recipe {str(path)!r}: "
    assert str(info.value).startswith(prefix)
    return str(info.value)[len(prefix):]


def test_the_fit_rows_are_the_fields_of_FitOptions_and_the_budget_rows_those_of_Budget():
    assert sorted(o.name for o in options_of("fit")) == sorted(f.name for f in fields(FitOptions))
    assert sorted(o.name for o in options_of("budget")) == sorted(f.name for f in fields(Budget))
    assert {o.name for o in options_of("recipe")} == {"source", "out"}
    assert len(BY_NAME) == len(OPTIONS), "option names are unique across owners"


def test_every_recipe_key_maps_to_a_schema_row():
    assert list(SECTIONS) == ["data", "budget", "search", "train", "export"]
    keys = [(section, key) for section, entries in SECTIONS.items() for key in entries]
    assert sorted(keys) == sorted((o.section, o.name) for o in OPTIONS)
    for section, key in keys:
        assert SECTIONS[section][key] == BY_NAME[key].kind.toml_types


def test_every_cli_flag_maps_to_a_schema_row():
    actions = [a for a in _fit_actions() if a.dest not in RUN_ARGUMENTS]
    assert {flag for a in actions for flag in a.option_strings} == OPTION_FLAGS
    assert {a.dest for a in actions} == set(CLI_FLAGS)
    for action in actions:
        section, key = CLI_FLAGS[action.dest]
        option = BY_NAME[key]
        assert (option.section, option.flag, option.dest) == (section, action.option_strings[0], action.dest)
        assert action.help == option.help
        assert action.choices == option.kind.choices
    assert {o.flag for o in OPTIONS if o.flag} == OPTION_FLAGS


@pytest.mark.parametrize("name,value,expected", [
    ("epochs", 0, "a positive integer or None"),
    ("image_size", 8, "at least 16 (the ImageNet-style ResNets downsample 32x, to 1 px at 16)"),
    ("batch_size", True, "a positive integer or None"),
    ("final_data", "val", "one of ('auto', 'train', 'train+val')"),
    ("trainable_stages", [6], "a non-empty list of integers in 0..5"),
    ("learning_rate_range", (0.1, 0.01), "(low, high) with 0 < low < high"),
    ("val_fraction", 0.5, "in (0, 0.5)"),
    ("seed", 1.5, "an integer"),
    ("feature_cache", "yes", "True or False"),
    ("feature_cache_memory_mb", -1, "a non-negative integer"),
    ("minutes", float("inf"), "a positive number or None"),
    ("max_params", 2.5, "a positive integer or None"),
])
def test_each_kind_names_what_it_expects(name, value, expected):
    owner = BY_NAME[name].owner
    with pytest.raises(ConfigError) as info:
        {"fit": FitOptions, "budget": Budget}[owner](**{name: value})
    assert str(info.value) == \
        f"The {name!r} parameter of {OWNER_NAMES[owner]} must be {expected}. Got {value!r} instead."


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.flag and o.owner != "recipe"], ids=lambda o: o.name)
def test_every_flag_parses_a_good_value_into_what_its_owner_accepts(option):
    text = option.kind.choices[-1] if option.kind.choices else GOOD_TEXT.get(option.name, "7")
    switch = option.kind.toml_types == (bool,)  # a switch takes no value: present means True
    args = build_parser().parse_args(["fit", "DATA", option.flag] + ([] if switch else [text]))
    value = getattr(args, option.dest)
    assert option.error(value) is None
    owner = FitOptions if option.owner == "fit" else Budget
    assert getattr(owner(**{option.name: value}), option.name) == value


def test_a_bad_cli_value_reads_like_the_same_value_from_python_or_a_recipe(tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        FitOptions(epochs=0)
    from_python = str(info.value)
    assert _cli_error(capsys, "--epochs", "0").endswith(f"argument --epochs: {from_python}")
    assert _recipe_error(tmp_path, "[search]\nepochs = 0\n") == from_python
    with pytest.raises(ConfigError) as info:
        Budget(minutes=-3.0)  # the CLI parses minutes as a float
    assert _cli_error(capsys, "--minutes", "-3").endswith(f"argument --minutes: {info.value}")


@pytest.mark.parametrize("key,section,toml,flag,text", [
    ("epochs", "search", '"three"', "--epochs", "three"),
    ("minutes", "budget", '"ten"', "--minutes", "ten"),
    ("tuner", "search", "3", "--tuner", "grid"),
    ("seed", "train", "true", "--seed", "1.5"),
])
def test_a_recipe_key_of_the_wrong_type_and_a_bad_cli_value_share_one_message_shape(tmp_path, capsys, key, section,
                                                                                     toml, flag, text):
    from_recipe = _recipe_error(tmp_path, f"[{section}]\n{key} = {toml}\n")
    from_cli = _cli_error(capsys, flag, text).split(f"argument {flag}: ", 1)[1]
    for message in (from_recipe, from_cli):
        match = SHAPE.fullmatch(message)
        assert match, message
        assert key in match["subject"]
    assert SHAPE.fullmatch(from_recipe)["subject"] == f"[{section}] {key}"
    assert SHAPE.fullmatch(from_recipe)["expected"] == BY_NAME[key].kind.toml_type_names()
    assert SHAPE.fullmatch(from_cli)["subject"] == f"The {key!r} parameter of {OWNER_NAMES[BY_NAME[key].owner]}"
    assert SHAPE.fullmatch(from_cli)["expected"] == BY_NAME[key].kind.problem(text)
