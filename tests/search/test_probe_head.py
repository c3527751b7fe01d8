"""With every stage frozen on pretrained weights, the head is the linear probe itself: trials score
it without gradient training, the final training fits it on every image, and it opens the search."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_class_folders

from resnet_automl.data import prepare_data
from resnet_automl.data.arrays import load_images
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.modeling.assembly import backbone_of
from resnet_automl.modeling.classifier import build_classifier
from resnet_automl.modeling.head import PROBE_MAX_IMAGES, head_from_probe, head_is_the_probe, pooled_features
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.search.space import SearchSpace, TrialSettings
from resnet_automl.search.tuner import make_tuner
from resnet_automl.training.final import FinalSettings, train_final


def test_the_head_is_the_probe_only_frozen_pretrained_and_small():
    assert head_is_the_probe(0, 40, pretrained=True)
    assert not head_is_the_probe(1, 40, pretrained=True)  # a stage trains: LP-FT, by gradient
    assert not head_is_the_probe(0, 40, pretrained=False)  # random filters: nothing to probe
    assert not head_is_the_probe(0, PROBE_MAX_IMAGES + 1, pretrained=True)  # the probe sees a sample only


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return prepare_data(make_class_folders(tmp_path_factory.mktemp("probe") / "data", per_class=6))


def _data(splits, name):
    items = getattr(splits, name)
    return load_images(items, 32), np.array([label for _, label in items])


def test_a_frozen_pretrained_trial_is_the_probe_and_the_final_head_too(splits, pretrained_file, tmp_path):
    hypermodel = ResNetHyperModel(SearchSpace(["tiny_resnet"], [0]),
                                  TrialSettings(num_classes=3, image_size=32, epochs=2, steps_per_epoch=2, batch_size=6,
                                                dropout=0.0),
                                  weights=pretrained_file, items=(splits.train, splits.val))
    tuner = make_tuner("random", hypermodel, objective="val_accuracy", max_trials=1, directory=tmp_path)
    (train_images, train_labels), (val_images, val_labels) = _data(splits, "train"), _data(splits, "val")
    tuner.search(ArrayBatches(train_images, train_labels, 6, shuffle=True),
                 validation_data=ArrayBatches(val_images, val_labels, 6), epochs=2, verbose=0)
    # the same probe, computed here: logistic regression on the pooled features of the frozen source
    reference = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=0, weights=pretrained_file)
    kernel, bias = head_from_probe(pooled_features(reference, train_images), train_labels, 3)
    logits = pooled_features(reference, val_images) @ kernel + bias
    trial = tuner.oracle.get_best_trials(1)[0]
    assert trial.score == pytest.approx(np.mean(np.argmax(logits, axis=1) == val_labels))
    assert trial.metrics.exists("val_loss")  # the tie-break has the probe's loss
    checkpoint = tuner.load_model(trial)
    assert np.allclose(checkpoint.get_layer("predictions").get_weights()[0], kernel, atol=1e-5)

    model, history = train_final({"backbone": "tiny_resnet", "trainable_stages": 0, "learning_rate": 1e-3},
                                 arrays={"train": train_images, "val": val_images},
                                 labels={"train": train_labels, "val": val_labels},
                                 settings=FinalSettings(num_classes=3, image_size=32, epochs=5, batch_size=6,
                                                        bn_momentum=0.9, use_val=True),
                                 weights=pretrained_file, out_dir=tmp_path)
    everything = np.concatenate([train_images, val_images])
    kernel, _ = head_from_probe(pooled_features(reference, everything), np.concatenate([train_labels, val_labels]), 3)
    assert history["linear_probe_images"] == len(everything) and history["epochs_completed"] == 0
    assert np.allclose(model.get_layer("predictions").get_weights()[0], kernel, atol=1e-5)
    for mine, source in zip(backbone_of(model).get_weights(), backbone_of(reference).get_weights(), strict=True):
        assert np.array_equal(mine, source)  # nothing of the backbone moved
    assert json.loads((tmp_path / "final" / "history.json").read_text())["linear_probe_images"] == len(everything)


@pytest.mark.slow
def test_the_probe_opens_a_pretrained_search_then_the_centre(pretrained_file, tmp_path):
    import resnet_automl

    data = make_class_folders(tmp_path / "data", classes=("yellow", "magenta"), per_class=8)
    result = resnet_automl.fit(data, out=tmp_path / "run", backbone="tiny_resnet", weights=pretrained_file,
                               image_size=32, epochs=1, final_epochs=1, budget=resnet_automl.Budget(max_trials=2),
                               verbose=0)
    assert [trial["hyperparameters"]["trainable_stages"] for trial in result.trials] == [0, 2]  # then the centre


@pytest.mark.slow  # a fit of 15-40 s: the default suite stays under 10 minutes on 2 cores
def test_a_frozen_fit_exports_the_probe_and_says_so(pretrained_file, tmp_path):
    import resnet_automl

    data = make_class_folders(tmp_path / "data", classes=("yellow", "magenta"), per_class=8)
    resnet_automl.fit(data, out=tmp_path / "run", backbone="tiny_resnet", weights=pretrained_file, image_size=32,
                      trainable_stages=[0], epochs=1, budget=resnet_automl.Budget(max_trials=1), verbose=0)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    splits = prepare_data(data)  # the split fit made (same seed and fractions)
    assert record["history"]["linear_probe_images"] == len(splits.train) + len(splits.val)  # train + val
    assert record["history"]["epochs_completed"] == 0
    assert any("logistic regression" in note and "no gradient training" in note for note in record["notes"])
    assert not any("augmentation" in note for note in record["notes"] if "logistic" not in note)
    assert record["export"]["passed"] is True  # the SavedModel serves
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert "training_curves" not in report["plots"]  # no epochs ran: no empty plot
