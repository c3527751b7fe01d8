"""Multi-label classification: manifests with several labels per image, the iteratively stratified
split, the sigmoid head and its loss, per-label thresholds, the metrics, the report, serving and
prediction (any number of labels per image, maybe none)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from resnet_automl.cli.main import main
from resnet_automl.config.task import Task
from resnet_automl.data import ManifestColumns, prepare_data, scan_dataset
from resnet_automl.data.split import DatasetSplits, multi_hot
from resnet_automl.errors import DataError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def write_mosaic(path, colours: list, size: int = 32, seed: int = 0) -> None:
    """A 2x2 mosaic: each quarter a colour of `colours` (names) or grey, with a little noise."""
    rng = np.random.default_rng(seed)
    cells = [COLOURS[name] for name in colours] + [(128, 128, 128)] * (4 - len(colours))
    cells = [cells[i] for i in rng.permutation(4)]
    half = size // 2
    pixels = np.zeros((size, size, 3), np.float32)
    for index, colour in enumerate(cells):
        top, left = (index // 2) * half, (index % 2) * half
        pixels[top:top + half, left:left + half] = colour
    pixels += rng.normal(0, 12, pixels.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def mosaic_rows(count: int, seed: int = 0) -> list:
    """(relative path, list of colour names) for `count` mosaics with 1-3 colours each."""
    rng = np.random.default_rng(seed)
    names = sorted(COLOURS)
    rows = []
    for i in range(count):
        chosen = sorted(rng.choice(names, size=int(rng.integers(1, 4)), replace=False).tolist())
        rows.append((f"img/m{i}.png", chosen))
    return rows


@pytest.fixture
def mosaics(tmp_path):
    """60 mosaics under tmp_path/img and a CSV (path,labels with ' ' between labels) naming them."""
    rows = mosaic_rows(60)
    for i, (path, colours) in enumerate(rows):
        write_mosaic(tmp_path / path, colours, seed=i)
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,labels\n" + "".join(f"{p},{' '.join(c)}\n" for p, c in rows), encoding="utf-8")
    return tmp_path, manifest, rows


def test_a_delimited_csv_is_read_as_multilabel(mosaics):
    folder, manifest, rows = mosaics
    scan = scan_dataset(manifest, ManifestColumns(label_delimiter=" "))
    assert scan.multilabel and scan.class_names == sorted(COLOURS)
    labels = dict(scan.images["all"])
    assert labels[str(folder / rows[0][0])] == tuple(rows[0][1])


def test_jsonl_lists_are_multilabel_without_a_delimiter(mosaics):
    folder, _, rows = mosaics
    manifest = folder / "labels.jsonl"
    manifest.write_text("".join(json.dumps({"image": p, "labels": c}) + "\n" for p, c in rows), encoding="utf-8")
    splits = prepare_data(manifest, None)
    assert splits.task == "multilabel" and splits.audit["multilabel"]
    assert splits.audit["label_cardinality"] == pytest.approx(np.mean([len(c) for _, c in rows]), abs=0.3)


def test_several_labels_in_a_multiclass_task_are_refused(mosaics):
    _, manifest, _ = mosaics
    with pytest.raises(DataError, match=r"Row 2 .*several labels.*--task multilabel"):
        scan_dataset(manifest, ManifestColumns(label_delimiter=" ", task="multiclass"))


def test_multilabel_task_on_a_class_folder_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="--task multilabel needs a CSV or JSONL manifest"):
        scan_dataset(tmp_path, ManifestColumns(task="multilabel"))


def test_forced_multilabel_reads_single_labels_as_one_element_sets(mosaics):
    _, manifest, _ = mosaics
    scan = scan_dataset(manifest, ManifestColumns(task="multilabel"))  # no delimiter: "red green" is one label
    assert scan.multilabel and all(isinstance(label, tuple) and len(label) == 1 for _, label in scan.images["all"])


def test_the_split_is_stratified_per_label_reproducible_and_saved(mosaics, tmp_path):
    _, manifest, _ = mosaics
    columns = ManifestColumns(label_delimiter=" ")
    splits = prepare_data(manifest, tmp_path / "run", seed=3, columns=columns)
    again = prepare_data(manifest, None, seed=3, columns=columns)
    assert splits.train == again.train and splits.test == again.test
    assert sorted(p for s in ("train", "val", "test") for p, _ in splits.split(s)) == sorted(
        str(tmp_path / p) for p, _ in mosaic_rows(60))
    for split in ("val", "test"):  # every label in every split, near its share of the whole set
        hot = splits.label_array(split)
        assert hot.shape == (len(splits.split(split)), 4) and hot.dtype == np.float32
        assert (hot.sum(axis=0) >= 1).all()
    loaded = DatasetSplits.load(tmp_path / "run" / "data" / "split.json")
    assert loaded.task == "multilabel" and loaded.train == splits.train
    assert isinstance(loaded.train[0][1], tuple)
    assert splits.class_weights() is None and len(splits.audit["positive_weights"]) == 4


def test_a_label_with_too_few_images_names_the_manifest(mosaics):
    folder, manifest, rows = mosaics
    text = manifest.read_text() + "img/rare.png,red purple\n"
    write_mosaic(folder / "img" / "rare.png", ["red"])
    manifest.write_text(text)
    with pytest.raises(DataError, match=r"Label 'purple' has 1 readable image\(s\) in the manifest"):
        prepare_data(manifest, None, columns=ManifestColumns(label_delimiter=" "))


def test_thresholds_maximise_f1_and_default_without_positives():
    from resnet_automl.training.metrics import DEFAULT_THRESHOLD, choose_thresholds

    targets = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    scores = np.array([[0.9, 0.2], [0.35, 0.1], [0.3, 0.4], [0.1, 0.3]])
    rows = choose_thresholds(targets, scores)
    assert rows[0]["threshold"] == pytest.approx(0.35) and rows[0]["f1"] == pytest.approx(1.0)
    assert rows[1]["threshold"] == DEFAULT_THRESHOLD and rows[1]["chosen"].startswith("default")


def test_multilabel_metrics_agree_with_scikit_learn():
    from sklearn.metrics import average_precision_score, f1_score, hamming_loss

    from resnet_automl.training.metrics import mean_average_precision, multilabel_metrics

    rng = np.random.default_rng(0)
    targets = (rng.random((50, 3)) < 0.4).astype(int)
    scores = np.clip(targets * 0.5 + rng.random((50, 3)) * 0.6, 0, 1)
    metrics = multilabel_metrics(scores, targets, ["a", "b", "c"], [0.5, 0.6, 0.4])
    predicted = (scores >= np.array([0.5, 0.6, 0.4])).astype(int)
    assert metrics["map"] == pytest.approx(average_precision_score(targets, scores, average="macro"))
    assert metrics["micro_f1"] == pytest.approx(f1_score(targets, predicted, average="micro"))
    assert metrics["hamming_loss"] == pytest.approx(hamming_loss(targets, predicted))
    assert metrics["accuracy"] == pytest.approx(np.mean((predicted == targets).all(axis=1)))
    assert metrics["cooccurrence"][0][0] == targets[:, 0].sum()
    targets[:, 2] = 0  # a label without positives is left out of the mean, not counted as 0
    assert mean_average_precision(targets, scores) == pytest.approx(
        np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in (0, 1)]))


def test_the_probe_head_is_one_regression_per_label():
    from resnet_automl.modeling.head import head_from_probe

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 6)).astype(np.float32)
    labels = np.stack([features[:, 0] > 0, features[:, 1] > 0, np.zeros(40, bool)], axis=1).astype(np.float32)
    kernel, bias = head_from_probe(features, labels, 3)
    assert kernel.shape == (6, 3) and bias[2] == -10.0 and not kernel[:, 2].any()
    probabilities = 1 / (1 + np.exp(-(features @ kernel + bias)))
    assert np.mean((probabilities[:, :2] > 0.5) == (labels[:, :2] > 0.5)) > 0.9


def test_the_loss_is_binary_cross_entropy_summed_over_labels_with_weighted_positives():
    import keras

    from resnet_automl.modeling.classifier import MultiLabelCrossentropy
    from resnet_automl.training.metrics import multilabel_log_loss

    y_true = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    y_pred = np.array([[0.7, 0.2], [0.4, 0.9]], np.float32)
    plain = 2 * float(keras.losses.BinaryCrossentropy()(y_true, y_pred))  # Keras averages over the 2 labels
    assert float(MultiLabelCrossentropy()(y_true, y_pred)) == pytest.approx(plain, rel=1e-5)
    assert multilabel_log_loss(y_true, y_pred) == pytest.approx(plain, rel=1e-5)
    weighted = float(MultiLabelCrossentropy([3.0, 1.0])(y_true, y_pred))
    assert weighted == pytest.approx(plain + 2 * -np.log(0.7) / 2, rel=1e-5)


def test_thresholded_predictions_list_every_label_at_or_above_its_threshold():
    from resnet_automl.serving.inference.ranking import thresholded_results

    results = thresholded_results(np.array([[0.9, 0.2, 0.6], [0.1, 0.2, 0.3]]), ["a", "b", "c"], [0.5, 0.5, 0.6])
    assert results[0]["labels"] == ["a", "c"] and results[0]["scores"] == [0.9, 0.6]
    assert results[1]["labels"] == [] and results[1]["probabilities"]["c"] == 0.3


def test_the_report_has_the_multilabel_tables(mosaics, tmp_path):
    from resnet_automl.report.build import build_report, headline

    folder, _, rows = mosaics
    names = sorted(COLOURS)
    items = [(str(folder / p), tuple(names.index(c) for c in colours)) for p, colours in rows[:20]]
    targets = multi_hot([label for _, label in items], 4)
    probabilities = np.clip(targets * 0.7 + np.random.default_rng(0).random(targets.shape) * 0.4, 0, 1)
    report = build_report(probabilities, items, names, {"audit": {"multilabel": True, "counts": {}}},
                          tmp_path / "report", thresholds=[0.5] * 4, model_card=True)
    assert report["task"] == "multilabel" and set(report["per_class"]["red"]) >= {"ap", "threshold", "f1"}
    assert report["plots"]["label_cooccurrence"] == "label_cooccurrence.png"
    assert all(m["kind"] in ("false positive", "false negative") for m in report["mistakes"])
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Decision thresholds" in markdown and "## Label co-occurrence" in markdown
    assert "mean average precision" in (tmp_path / "report" / "model_card.md").read_text()
    assert headline(report).startswith("test mAP ")


@pytest.mark.slow
def test_a_multilabel_manifest_fits_exports_predicts_and_evaluates(mosaics, capsys):
    import resnet_automl
    from resnet_automl import load_model

    folder, manifest, rows = mosaics
    result = resnet_automl.fit(manifest, out=folder / "run", backbone="tiny_resnet", weights=None, image_size=32,
                               epochs=2, final_epochs=2, label_delimiter=" ", export_formats=["litert"],
                               budget=resnet_automl.Budget(max_trials=1), verbose=0)
    report = result.report
    assert report["task"] == "multilabel" and 0.0 <= report["map"] <= 1.0
    assert set(report["threshold_table"]) == set(COLOURS)
    run = json.loads((folder / "run" / "run.json").read_text())
    assert run["task"] == "multilabel" and len(run["thresholds"]) == 4
    version_dir = result.paths["version_dir"]
    assert json.loads((folder / "run" / "model" / "1" / "assets" / "thresholds.json").read_text()).keys() == set(
        sorted(COLOURS))
    assert run["export"]["passed"] and run["exports"]["litert"]["passed"]
    assert run["export"]["outputs"] == ["predicted", "probabilities"]
    predictor = load_model(version_dir)
    assert predictor.thresholds == run["thresholds"]
    prediction = predictor.predict([str(folder / rows[0][0])])[0]
    assert set(prediction["labels"]) <= set(COLOURS) and len(prediction["probabilities"]) == 4
    edge = load_model(folder / "run" / "exports" / "litert")
    assert edge.thresholds == pytest.approx(run["thresholds"])
    assert main(["predict", version_dir, str(folder / rows[1][0]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["labels"] == predictor.predict([str(folder / rows[1][0])])[0]["labels"]
    assert main(["evaluate", str(folder / "run"), str(manifest), "--label-delimiter", " ", "--out",
                 str(folder / "eval")]) == 0
    assert "mAP" in capsys.readouterr().out


def test_scored_validation_as_compiled_logs_what_keras_evaluation_logs():
    """With `as_compiled`, the one prediction pass logs val_loss (the compiled, positive-weighted
    loss) and val_accuracy (binary accuracy) as `model.evaluate` computes them, beside val_map."""
    from resnet_automl.data.batches import ArrayBatches
    from resnet_automl.modeling.classifier import build_classifier, compile_classifier
    from resnet_automl.training.callbacks import ScoredValidation

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    targets = (rng.random((12, 3)) > 0.5).astype(np.float32)
    model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=5, weights=None, multilabel=True)
    compile_classifier(model, 1e-3, 4, multilabel=True, positive_weights=[1.0, 3.0, 0.5])
    val = ArrayBatches(images, targets, 5)
    expected = model.evaluate(val, return_dict=True, verbose=0)
    callback = ScoredValidation(val, targets, multilabel=True, as_compiled=True)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs["val_loss"] == pytest.approx(expected["loss"], rel=1e-4)
    assert logs["val_accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert 0.0 <= logs["val_map"] <= 1.0


def test_final_training_of_a_multilabel_model_passes_over_val_once_per_epoch(monkeypatch, tmp_path):
    """Early stopping on val_map reads the epoch's one prediction pass; Keras' own evaluation is off."""
    from resnet_automl.data.batches import ArrayBatches
    from resnet_automl.training import final

    passes = {}

    class CountingBatches(ArrayBatches):
        def __getitem__(self, index):
            if index == len(self) - 1 and not self.shuffle:
                passes[len(self.labels)] = passes.get(len(self.labels), 0) + 1
            return super().__getitem__(index)

    monkeypatch.setattr(final, "ArrayBatches", CountingBatches)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (26, 32, 32, 3), dtype=np.uint8)
    targets = (rng.random((26, 3)) > 0.5).astype(np.float32)
    # 12 val images in 3 batches: TensorFlow's adapter reads the first 2 batches of each pass to learn
    # their shapes, so only a real pass reaches the last one
    _, history = final.train_final(
        {"backbone": "tiny_resnet", "trainable_stages": 5, "learning_rate": 1e-3},
        arrays={"train": images[:14], "val": images[14:]}, labels={"train": targets[:14], "val": targets[14:]},
        settings=final.FinalSettings(num_classes=3, image_size=32, epochs=2, batch_size=4, task=Task.MULTILABEL),
        weights=None, out_dir=tmp_path)
    assert history["epochs_completed"] == 2 and len(history["val_map"]) == 2
    assert {"val_loss", "val_accuracy"} <= set(history)
    # one pass per epoch, then two to choose the BatchNorm statistics (before and after)
    assert passes[12] == 2 + 2
