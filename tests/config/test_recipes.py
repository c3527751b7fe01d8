"""Recipes: every shipped file validates, bad keys name file/section/key, one runs end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_class_folders

from resnet_automl.cli.main import build_parser, main
from resnet_automl.config.budget import Budget
from resnet_automl.config.options import FitOptions
from resnet_automl.config.recipes import load_recipe, recipe_to_fit_arguments, resolve_cli_options
from resnet_automl.errors import ConfigError
from resnet_automl.planning import ranges

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.toml"))


def test_the_shipped_recipes_are_there():
    names = {p.stem for p in RECIPES}
    assert {"edge", "balanced", "max-accuracy", "cpu-quick"} <= names
    assert any(load_recipe(p).get("data", {}).get("source", "").startswith("tfds:") for p in RECIPES)


def test_each_budget_preset_is_its_recipes_budget():
    from resnet_automl.config.budget import PRESETS

    by_name = {p.stem: p for p in RECIPES}
    for name in PRESETS:
        assert Budget.preset(name) == Budget(**load_recipe(by_name[name])["budget"]), name


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
    ("[search]\nfeature_cache = 1\n", r"\[search\] feature_cache must be bool\. Got 1 \(int\)"),
    ("[search]\ntrainable_stages = [7]\n", r"The 'trainable_stages' parameter of fit must be a non-empty list"),
    ("[budget\n", "is not valid TOML"),
])
def test_bad_recipes_name_file_section_and_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        recipe_to_fit_arguments(load_recipe(path))
    assert str(path) in str(info.value)


def test_options_without_a_flag_come_from_recipes(tmp_path):
    path = tmp_path / "no-flags.toml"
    path.write_text("[data]\nsource = 'photos'\nval_fraction = 0.2\ntest_fraction = 0.1\n"
                    "[search]\ntrainable_stages = [3, 5]\nlearning_rate_range = [0.001, 0.1]\nfeature_cache = false\n"
                    "feature_cache_memory_mb = 0\n[export]\nout = 'runs/photos'\n")
    source, out, options, budget = recipe_to_fit_arguments(load_recipe(path))
    assert (source, out, budget) == ("photos", "runs/photos", Budget())
    assert options == {"val_fraction": 0.2, "test_fraction": 0.1, "trainable_stages": [3, 5],
                       "learning_rate_range": (0.001, 0.1), "feature_cache": False, "feature_cache_memory_mb": 0}
    assert ranges.learning_rate_range(FitOptions(**options)) == (0.001, 0.1)


def test_cli_flags_override_the_recipe(tmp_path):
    args = build_parser().parse_args(["fit", "DATA", "--recipe", str(RECIPES[0].parent / "edge.toml"),
                                      "--minutes", "2", "--backbone", "resnet18", "--final-data", "train"])
    data, out, options, budget = resolve_cli_options(args)
    assert data == "DATA" and budget.minutes == 2 and budget.max_latency_ms == 30
    assert options["backbone"] == "resnet18" and options["image_size"] == 128 and options["final_data"] == "train"


@pytest.mark.slow
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
