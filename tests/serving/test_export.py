"""The serving contract: signatures, saved_model_cli, TF Serving's REST encoding, versions,
atomic writes, warm-up records, and the predictor."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from resnet_automl import load_model
from resnet_automl.errors import DataError, ExportError
from resnet_automl.serving.savedmodel.export import WARMUP_FILE, as_numpy_bytes, export_serving_model, read_labels

CLI = Path(sys.executable).parent / "saved_model_cli"


def test_fit_exports_a_verified_servable_model(trained_run):
    version = Path(trained_run.paths["version_dir"])
    assert version.name == "1" and (version / "variables").is_dir()
    assert read_labels(version) == trained_run.class_names
    config = (version.parent / "models.config").read_text()
    name = Path(trained_run.paths["run_dir"]).resolve().name  # the container path, valid on any host
    assert f'name: "{name}"' in config and f'base_path: "/models/{name}"' in config
    assert 'model_platform: "tensorflow"' in config
    assert trained_run.report["export"]["passed"] and trained_run.report["export"]["max_abs_diff"] <= 1e-4


def test_saved_model_cli_lists_the_signatures(trained_run):
    out = subprocess.run([str(CLI), "show", "--dir", trained_run.paths["version_dir"], "--all"],
                         capture_output=True, text=True, timeout=300).stdout
    default = out[out.index("signature_def['serving_default']"):]
    default = default[:default.index("Method name")]
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in default
    for name, dtype in (("probabilities", "DT_FLOAT"), ("classes", "DT_STRING"), ("scores", "DT_FLOAT")):
        assert f"outputs['{name}'] tensor_info:\n        dtype: {dtype}" in default
    assert "signature_def['serving_tensor']" in out and "inputs['pixels']" in out


def test_saved_model_cli_run_on_jpeg_bytes(trained_run, tmp_path):
    image = Path(trained_run.paths["run_dir"]).parent / "data" / "red" / "photo.jpg"
    npy = tmp_path / "in.npy"
    np.save(npy, as_numpy_bytes([image]), allow_pickle=True)
    proc = subprocess.run([str(CLI), "run", "--dir", trained_run.paths["version_dir"], "--tag_set", "serve",
                           "--signature_def", "serving_default", "--inputs", f"image_bytes={npy}",
                           "--outdir", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probabilities = np.load(tmp_path / "out" / "probabilities.npy")
    expected = load_model(trained_run.paths["version_dir"]).probabilities([image])
    assert probabilities.shape == (1, 3) and np.allclose(probabilities, expected, atol=1e-5)


def test_rest_b64_body_matches_predict(trained_run):
    images = sorted((Path(trained_run.paths["run_dir"]).parent / "data" / "green").glob("img_*.png"))[:3]
    body = json.dumps({"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in images]})
    decoded = [base64.b64decode(item["b64"]) for item in json.loads(body)["instances"]]  # what TF Serving does
    loaded = tf.saved_model.load(trained_run.paths["version_dir"])
    served = loaded.signatures["serving_default"](image_bytes=tf.constant(decoded))
    predictor = load_model(trained_run.paths["run_dir"])
    predicted = predictor.predict([str(p) for p in images])
    assert [c.decode() for c in served["classes"].numpy()] == [r["labels"][0] for r in predicted]
    assert np.allclose(served["scores"].numpy(), [r["scores"][0] for r in predicted], atol=1e-6)


def test_predictor_accepts_paths_bytes_arrays_and_odd_modes(trained_run, tmp_path):
    from PIL import Image

    predictor = load_model(Path(trained_run.paths["model_dir"]))
    image = Path(trained_run.paths["run_dir"]).parent / "data" / "red" / "img_0.png"
    by_path = predictor.probabilities([image])
    by_bytes = predictor.probabilities([image.read_bytes()])
    pixels = np.asarray(Image.open(image).convert("RGB"), dtype="float32")[None]
    by_array = predictor.probabilities(pixels)
    assert np.allclose(by_path, by_bytes) and np.allclose(by_path, by_array, atol=1e-5)
    grey, rgba = tmp_path / "g.png", tmp_path / "a.png"
    Image.open(image).convert("L").save(grey)
    Image.open(image).convert("RGBA").save(rgba)
    results = predictor.predict([grey, rgba], top_k=2)
    assert all(len(r["labels"]) == 2 and abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in results)


def test_corrupt_image_in_a_batch_is_named(trained_run, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    good = Path(trained_run.paths["run_dir"]).parent / "data" / "red" / "img_0.png"
    with pytest.raises(DataError, match=r"Could not decode \[.*bad.jpg'\]"):
        load_model(trained_run.paths["model_dir"]).predict([good, bad])


def test_new_export_takes_next_version_and_is_atomic(trained_run, tmp_path, monkeypatch):
    root = tmp_path / "model"
    shutil.copytree(Path(trained_run.paths["version_dir"]), root / "1")
    second = export_serving_model(trained_run.model, trained_run.class_names, root, image_size=32)
    assert second.name == "2" and (root / "1" / "saved_model.pb").exists()

    from resnet_automl.serving.savedmodel import export

    def killed(*args, **kwargs):  # the SavedModel is written, the warm-up file is not
        raise OSError("simulated kill during write")

    monkeypatch.setattr(export, "write_warmup_requests", killed)
    with pytest.raises(ExportError, match="failed"):
        export_serving_model(trained_run.model, trained_run.class_names, root, image_size=32,
                             warmup_images=[b"x"])
    assert sorted(os.listdir(root)) == ["1", "2", "models.config"]


def test_warmup_records_are_prediction_logs(trained_run):
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(trained_run.paths["version_dir"]) / WARMUP_FILE
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert 1 <= len(records) <= 3
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    assert log.predict_log.request.model_spec.signature_name == "serving_default"
    assert log.predict_log.request.inputs["image_bytes"].dtype == tf.string.as_datatype_enum


def test_load_model_error_names_the_path(tmp_path):
    with pytest.raises(ExportError, match=f"No exported model found at '{tmp_path}'"):
        load_model(tmp_path)
