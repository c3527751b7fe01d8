"""Recipes: every shipped file validates, bad keys name file/section/key, one runs end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_class_folders
from resnet_automl.config.budget import Budget
from resnet_automl.cli.main import build_parser, main
from resnet_automl.errors import ConfigError
from resnet_automl.config.options import FitOptions
from resnet_automl.config.recipes import load_recipe, recipe_to_fit_arguments, resolve_cli_options

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.toml"))


def test_the_shipped_recipes_are_there():
    names = {p.stem for p in RECIPES}
    assert {"edge", "balanced", "max-accuracy", "cpu-quick"} <= names
    assert any(load_recipe(p).get("data", {}).get("source", "").startswith("tfds:") for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_validates_into_options_and_budget(path):
    assert path.read_text().startswith("# "), "each recipe starts with a comment saying when to use it"
    _, _, options, budget = recipe_to_fit_arguments(load_recipe(path))
    assert isinstance(budget, Budget)
    FitOptions(**options)


@pytest.mark.parametrize("text,match", [
    ("[budjet]\nminutes = 3\n", r"unknown section \[budjet\]\. Valid sections: data, budget"),
    ("[search]\nbackbones = 'resnet18'\n", r"unknown key 'backbones' in \[search\]\. Valid keys: backbone, tuner"),
    ("[budget]\nminutes = 'ten'\n", r"\[budget\] minutes must be int or float\. Got 'ten' \(str\)"),
    ("[train]\nimage_size = 64.5\n", r"\[train\] image_size must be int\. Got 64.5"),
    ("[budget]\nminutes = -2\n", r"The 'minutes' parameter of Budget must be a positive number"),
    ("[budget\n", "is not valid TOML"),
])
def test_bad_recipes_name_file_section_and_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        recipe_to_fit_arguments(load_recipe(path))
    assert str(path) in str(info.value)


def test_cli_flags_override_the_recipe(tmp_path):
    args = build_parser().parse_args(["fit", "DATA", "--recipe", str(RECIPES[0].parent / "edge.toml"),
                                      "--minutes", "2", "--backbone", "resnet18", "--final-data", "train"])
    data, out, options, budget = resolve_cli_options(args)
    assert data == "DATA" and budget.minutes == 2 and budget.max_latency_ms == 20
    assert options["backbone"] == "resnet18" and options["image_size"] == 128 and options["final_data"] == "train"


def test_cpu_quick_recipe_runs_end_to_end(tmp_path, capsys):
    data = make_class_folders(tmp_path / "data", per_class=6)
    out = tmp_path / "run"
    code = main(["fit", str(data), "--recipe", str(RECIPES[0].parent / "cpu-quick.toml"), "--out", str(out),
                 "--minutes", "3", "--max-trials", "2", "--epochs", "1", "--final-epochs", "2", "--image-size", "32",
                 "--weights", "none"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "run.json").read_text())
    assert record["recipe"].endswith("cpu-quick.toml")
    assert record["budget"]["minutes"] == 3 and record["options"]["backbone"] == "resnet18"
    assert record["options"]["batch_size"] == 32 and (out / "report" / "report.html").exists()
    assert record["options"]["final_epochs"] == 2 and record["history"]["epochs_completed"] == 2  # not grown
