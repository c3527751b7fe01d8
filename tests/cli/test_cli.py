"""The command line: help, version, exit 2 with one message on bad input, predict and evaluate."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_class_folders

from resnet_automl import __version__
from resnet_automl.cli.main import main

EXE = [sys.executable, "-m", "resnet_automl"]


def test_help_and_version_are_fast_and_list_commands():
    out = subprocess.run([*EXE, "--help"], capture_output=True, text=True, timeout=60).stdout
    for command in ("fit", "predict", "evaluate", "backbones", "demo"):
        assert command in out
    assert subprocess.run([*EXE, "--version"], capture_output=True, text=True, timeout=60).stdout.strip() == \
        f"resnet-automl {__version__}"


def test_bad_data_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([*EXE, "fit", str(tmp_path / "nope"), "--weights", "none"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and str(tmp_path / "nope") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing is left behind for a mistyped path


@pytest.mark.parametrize("argv,message", [
    (["fit", "{data}", "--minutes", "-3"], "must be a positive number"),
    (["fit", "{data}", "--epochs", "three"], "The 'epochs' parameter of fit must be a positive integer or None. "
                                             "Got 'three' instead."),
    (["fit", "{data}", "--backbone", "resnet19", "--weights", "none"], "Received: backbone='resnet19'"),
    (["fit", "{data}", "--recipe", "{data}/missing.toml"], "Recipe file"),
    (["fit", "{file}"], "is a file, not a folder"),
    (["predict", "{data}", "x.png"], "No exported model found"),
])
def test_errors_name_the_problem(tmp_path, capsys, argv, message):
    data = make_class_folders(tmp_path / "data", per_class=3)
    (tmp_path / "file.txt").write_text("x")
    argv = [a.format(data=data, file=tmp_path / "file.txt") for a in argv]
    try:
        code = main([*argv[:1], *argv[1:], "--out", str(tmp_path / "run")] if argv[0] == "fit" else argv)
    except SystemExit as exc:  # argparse rejects a bad flag value with exit 2
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_unwritable_out_dir_fails_before_training(tmp_path, capsys):
    data = make_class_folders(tmp_path / "data", per_class=3)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the run folder should go")
    assert main(["fit", str(data), "--out", str(blocker / "run"), "--weights", "none"]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_predict_and_evaluate_commands(trained_run, capsys, tmp_path):
    image = Path(trained_run.paths["run_dir"]).parent / "data" / "red" / "img_1.png"
    assert main(["predict", trained_run.paths["run_dir"], str(image), "--top-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["image"] == str(image) and len(rows[0]["labels"]) == 2
    data = Path(trained_run.paths["run_dir"]).parent / "data"
    assert main(["evaluate", trained_run.paths["model_dir"], str(data), "--out", str(tmp_path / "ev")]) == 0
    assert "accuracy" in capsys.readouterr().out
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["num_test_images"] == 25 and report["class_names"] == trained_run.class_names


def readme_flags() -> list:
    """(command, flag) for every `--flag` on a `resnet-automl COMMAND` line of README.md's shell blocks
    (continuation lines included; comments left out)."""
    found, command, in_block = [], None, False
    for line in (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block, command = line.strip() == "```bash", None
            continue
        if not in_block:
            continue
        code = line.split("#", 1)[0]
        if code.startswith("resnet-automl "):
            command = code.split()[1]
        elif not (code.startswith(" ") and command):
            command = None
            continue
        found += [(command, flag) for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", code)]
    return found


def test_every_flag_in_the_readme_exists():
    from resnet_automl.cli.main import build_parser

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    flags = readme_flags()
    assert len(flags) > 30 and ("fit", "--minutes") in flags
    missing = [(command, flag) for command, flag in flags
               if flag not in subcommands[command]._option_string_actions]
    assert not missing, f"README.md shows flags the CLI does not have: {missing}"


def test_fit_help_shows_each_default():
    from resnet_automl.cli.main import build_parser

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    fit = subcommands["fit"]._option_string_actions
    valued = {flag for flag, action in fit.items() if action.nargs != 0 and flag not in ("--chief", "--worker-id")}
    assert {"--minutes", "--max-trials", "--backbone", "--tuner", "--epochs", "--weights", "--image-size",
            "--batch-size", "--seed"} <= valued
    for flag in valued:  # every flag that takes a value says what it is when not given
        assert "default" in fit[flag].help, f"{flag}: {fit[flag].help}"
    out = subprocess.run([*EXE, "fit", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "default bayesian" in out and "default imagenet" in out
