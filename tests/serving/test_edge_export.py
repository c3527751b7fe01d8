"""LiteRT (float32, int8) and ONNX exports: options, writing, fresh-process checks, the Deployment
table, prediction from the files, and the errors a user can cause."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from resnet_automl import load_model
from resnet_automl.cli.main import main
from resnet_automl.config.options import FitOptions
from resnet_automl.errors import ConfigError
from resnet_automl.serving.edge import formats

EDGE = ["litert", "litert-int8", "onnx"]


@pytest.fixture(scope="module")
def exported_run(trained_run, tmp_path_factory):
    """A copy of the shared tiny run with every format added by `resnet-automl export --format`."""
    run = tmp_path_factory.mktemp("edge") / "run"
    shutil.copytree(trained_run.paths["run_dir"], run)
    assert main(["export", str(run), "--format", ",".join(EDGE)]) == 0
    return run


def test_export_formats_option_is_normalised_and_checked(tmp_path, capsys):
    assert FitOptions(export_formats=["onnx", "litert"]).export_formats == ("savedmodel", "litert", "onnx")
    assert FitOptions().export_formats == ("savedmodel",)
    assert FitOptions(export_formats="savedmodel").export_formats == ("savedmodel",)  # one name, as a str
    assert FitOptions(export_formats="onnx, litert").export_formats == ("savedmodel", "litert", "onnx")
    with pytest.raises(ConfigError, match="'export_formats' parameter of fit"):
        FitOptions(export_formats=["tflite"])
    with pytest.raises(ConfigError, match="'export_formats' parameter of fit"):
        FitOptions(export_formats="litert,tflite")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path), "--format", "litert,tflite"])
    assert exc.value.code == 2
    assert "litert-int8" in capsys.readouterr().err  # the valid names are listed


def test_missing_runtime_names_the_extra_before_anything_runs(image_folder, tmp_path, monkeypatch, capsys):
    real = formats.importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    out = tmp_path / "run"
    assert main(["fit", str(image_folder), "--out", str(out), "--export-formats", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime" in err and "pip install 'resnet-automl[edge]'" in err and "Traceback" not in err
    assert not out.exists()  # nothing started


def test_export_of_a_run_without_a_final_model_exits_2(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"data": str(tmp_path), "stages_done": ["data", "search"]}))
    assert main(["export", str(tmp_path), "--format", "onnx"]) == 2
    assert "has no final model yet" in capsys.readouterr().err


def test_every_format_is_written_checked_and_reported(exported_run):
    record = json.loads((exported_run / "run.json").read_text())
    labels = (Path(record["version_dir"]) / "assets" / "labels.txt").read_text(encoding="utf-8")
    for name in EDGE:
        folder = exported_run / "exports" / name
        spec = json.loads((folder / "preprocessing.json").read_text())
        assert (folder / spec["file"]).is_file() and spec["input"]["shape"] == [-1, 32, 32, 3]
        assert (folder / "labels.txt").read_text(encoding="utf-8") == labels  # the SavedModel's, in order
        check = record["exports"][name]
        assert check["passed"], check
        assert check["images"] > 0 and check["latency_ms"]["p50"] > 0
    assert record["exports"]["litert"]["max_abs_diff"] <= 1e-4
    assert record["exports"]["onnx"]["max_abs_diff"] <= 1e-4
    assert record["options"]["export_formats"] == ["savedmodel", *EDGE]
    int8 = json.loads((exported_run / "exports" / "litert-int8" / "preprocessing.json").read_text())
    assert int8["input"]["dtype"] == "uint8" and "quantization" in int8["input"]
    assert record["exports"]["litert-int8"]["size_mb"] < record["exports"]["litert"]["size_mb"]
    report = json.loads((exported_run / "report" / "report.json").read_text())
    assert [row["format"] for row in report["deployment"]] == ["savedmodel", *EDGE]
    assert report["deployment"][0]["latency_ms"]["p50"] > 0
    assert "<h2>Deployment</h2>" in (exported_run / "report" / "report.html").read_text()
    assert "litert-int8 (`model.tflite`" in (exported_run / "model" / "model_card.md").read_text()


@pytest.mark.parametrize("name", EDGE)
def test_exported_files_predict_like_the_saved_model(exported_run, trained_run, name):
    images = sorted(str(p) for p in Path(trained_run.paths["run_dir"]).parent.joinpath("data").rglob("*.png")
                    if p.name != "broken.png")[:6]
    served = load_model(exported_run).probabilities(images)
    folder = exported_run / "exports" / name
    edge = load_model(folder)  # the folder, or the file itself
    assert load_model(next(folder.glob("model.*"))).class_names == edge.class_names
    probabilities = edge.probabilities(images)
    if name == "litert-int8":
        assert (probabilities.argmax(1) == served.argmax(1)).mean() >= 0.8
    else:
        np.testing.assert_allclose(probabilities, served, atol=1e-4)


def test_predict_command_runs_a_tflite_file_to_csv(exported_run, trained_run, tmp_path, capsys):
    folder = tmp_path / "photos"
    shutil.copytree(Path(trained_run.paths["run_dir"]).parent / "data" / "red", folder)
    (folder / "fake.jpg").write_text("a text file renamed")
    out = tmp_path / "predictions.csv"
    model = exported_run / "exports" / "litert" / "model.tflite"
    assert main(["predict", str(model), str(folder), "--out", str(out), "--top-k", "2"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(list(folder.iterdir()))
    bad = [row for row in rows if row["error"]]
    assert [Path(row["path"]).name for row in bad] == ["fake.jpg"]
    assert "1 skipped" in capsys.readouterr().out


def test_a_format_that_fails_its_check_is_moved_aside(exported_run, tmp_path, monkeypatch, capsys):
    from resnet_automl.pipeline import edge_stage

    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    record = json.loads((run / "run.json").read_text())
    record["exports"]["onnx"]["passed"] = False  # as if it failed before: the rerun writes and checks it again
    (run / "run.json").write_text(json.dumps(record))
    real = edge_stage.verify_edge_format
    monkeypatch.setattr(edge_stage, "verify_edge_format",
                        lambda fmt, *a, **k: {**real(fmt, *a, **k), "passed": False, "max_abs_diff": 0.5})
    assert main(["export", str(run)]) == 3
    err = capsys.readouterr().err
    assert "The onnx export failed its check" in err and "Traceback" not in err
    assert not (run / "exports" / "onnx").exists() and list((run / "rejected").glob("onnx-*"))
    assert (run / "exports" / "litert" / "model.tflite").is_file()  # checked before, left in place


@pytest.mark.slow
def test_a_child_tensorflow_process_writes_the_formats_from_a_weights_file(pretrained_file, tmp_path):
    """The path of a run trained on JAX: the files come from the final weights in a TensorFlow child."""
    from resnet_automl.serving.edge.runtime import EdgeRunner
    from resnet_automl.serving.savedmodel.tensorflow_process import formats_in_tensorflow_process

    calibration = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    written = formats_in_tensorflow_process(pretrained_file, tmp_path, ["litert-int8", "onnx"], calibration=calibration)
    assert sorted(written) == ["litert-int8", "onnx"]
    for path in written.values():
        assert EdgeRunner(path).probabilities(calibration).shape == (8, 3)
    assert (tmp_path / "exports" / "onnx" / "labels.txt").read_text().split() == ["a", "b", "c"]


def test_ten_thousand_predictions_from_a_litert_file_keep_memory_flat(exported_run):
    """The .tflite/.onnx predictor, like the SavedModel's (test_predict_memory.py), holds no memory per call."""
    from test_predict_memory import BATCH, CALLS, MAX_GROWTH_MB, _encoded, _rss_mb

    predictor = load_model(exported_run / "exports" / "litert-int8")
    images = [_encoded(seed) for seed in range(BATCH)]
    rss = {}
    for call in range(1, CALLS + 1):
        assert len(predictor.predict(images, top_k=2)) == BATCH
        if call * BATCH in (2000, 10000):
            rss[call * BATCH] = _rss_mb()
    assert rss[10000] - rss[2000] < MAX_GROWTH_MB
