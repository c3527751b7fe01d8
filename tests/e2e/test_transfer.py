"""A previous run as the pretrained source: weights carried over, the freeze-depth search, the source
recorded, and sources that cannot work refused with a message."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_class_folders

from resnet_automl.cli.main import main


@pytest.fixture(scope="module")
def source_run(trained_run):
    """Run A, the pretraining: the session's trained run (tiny_resnet at 32 px, three classes)."""
    return Path(trained_run.paths["run_dir"])


def test_source_weights_reach_the_new_backbone(source_run, trained_run):
    from resnet_automl.modeling.assembly import backbone_of
    from resnet_automl.modeling.classifier import build_classifier
    from resnet_automl.weights.io import load_weights, read_metadata

    meta = read_metadata(source_run / "final" / "model.weights.h5")
    assert meta["backbone"] == "tiny_resnet" and meta["class_names"] == list(trained_run.class_names)
    source = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=0)
    load_weights(source, source_run / "final" / "model.weights.h5")
    target = build_classifier("tiny_resnet", 2, image_size=48, trainable_stages=0, weights=str(source_run))
    for theirs, ours in zip(backbone_of(source).weights, backbone_of(target).weights, strict=True):
        assert np.array_equal(theirs.numpy(), ours.numpy()), ours.path


@pytest.mark.slow
def test_fit_from_a_previous_run_searches_the_freeze_depth(source_run, trained_run, tmp_path):
    data = make_class_folders(tmp_path / "data", classes=("yellow", "magenta"), per_class=8)
    out = tmp_path / "run"
    code = main(["fit", str(data), "--out", str(out), "--weights", str(source_run), "--image-size", "48",
                 "--epochs", "1", "--max-trials", "3"])
    assert code == 0
    record = json.loads((out / "run.json").read_text())
    source = record["pretrained"]
    weights_file = source_run / "final" / "model.weights.h5"
    assert source["kind"] == "run" and source["backbone"] == "tiny_resnet" and source["layout"] == "torch"
    assert source["sha256"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert source["class_names"] == list(trained_run.class_names) and source["image_size"] == 32
    space = json.loads((out / "tuner" / "oracle.json").read_text())["hyperparameters"]["space"]
    stages = next(hp for hp in space if hp["config"]["name"] == "trainable_stages")
    assert stages["config"]["values"] == [0, 1, 2, 3, 5]  # the freeze depth is searched, as with ImageNet
    assert record["chosen_backbones"] == ["tiny_resnet"]
    assert "pretrained source" in record["selection_summary"]
    assert record["export"]["passed"] is True
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["pretrained"]["sha256"] == source["sha256"]
    assert "pretrained" in (out / "report" / "report.md").read_text()


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


@pytest.mark.parametrize("make,extra,message", [
    (lambda tmp, run: str(run), ["--backbone", "resnet18"], "holds a tiny_resnet backbone, but --backbone resnet18"),
    (lambda tmp, run: str(_write(tmp / "half" / "run.json", '{"stages_done": ["search"]}').parent), [],
     "has not finished"),
    (lambda tmp, run: str(_write(tmp / "empty" / "notes.txt", "x").parent), [], "not a run of resnet-automl"),
    (lambda tmp, run: str(_write(tmp / "x.weights.h5", b"\x00" * 64)), [], "is not a Keras weights file"),
    (lambda tmp, run: str(tmp / "missing"), [], "does not exist"),
])
def test_sources_that_cannot_work_exit_2_with_the_fix(source_run, tmp_path, capsys, make, extra, message):
    data = make_class_folders(tmp_path / "data", per_class=3)
    weights = make(tmp_path, source_run)
    code = main(["fit", str(data), "--out", str(tmp_path / "run"), "--weights", weights, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_a_weights_file_of_another_backbone_is_named(tmp_path):
    from resnet_automl.backbones import build_backbone, get_spec
    from resnet_automl.errors import WeightsError
    from resnet_automl.modeling.starting_weights import load_pretrained

    path = tmp_path / "plain.weights.h5"  # no metadata: saved with Keras' own save_weights
    build_backbone("tiny_resnet", (32, 32, 3)).save_weights(str(path))
    with pytest.raises(WeightsError, match="does not fit resnet18. It holds a tiny_resnet backbone"):
        load_pretrained(build_backbone("resnet18", (32, 32, 3)), get_spec("resnet18"), str(path))
