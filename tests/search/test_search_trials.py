"""Every trial counts: only effective hyperparameters are searched, a repeated configuration reuses
its score, trials record where their seconds go, and built models are reused between trials."""
from __future__ import annotations

import json
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import make_class_folders

from resnet_automl.backbones import stage_of
from resnet_automl.data import prepare_data
from resnet_automl.data.arrays import load_images
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.modeling.assembly import backbone_of
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.search.oracles import BayesianOracle
from resnet_automl.search.phases import PHASES
from resnet_automl.search.probe_trial import PROBE_HEAD_FILE
from resnet_automl.search.space import SearchSpace, TrialSettings
from resnet_automl.search.tuner import CHECKPOINT_FILE, make_tuner, trials_table
from resnet_automl.training.callbacks import KeepBestEpoch


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    splits = prepare_data(make_class_folders(tmp_path_factory.mktemp("trials") / "data", per_class=6))
    train = ArrayBatches(load_images(splits.train, 32), [y for _, y in splits.train], 6, shuffle=True)
    val = ArrayBatches(load_images(splits.val, 32), [y for _, y in splits.val], 6)
    return splits, train, val


def _hypermodel(splits, weights, choices=(0, 1)):
    return ResNetHyperModel(SearchSpace(["tiny_resnet"], list(choices)),
                            TrialSettings(num_classes=3, image_size=32, epochs=1, steps_per_epoch=2, batch_size=6),
                            weights=weights, items=(splits.train, splits.val))


@pytest.fixture(scope="module")
def searched(data, pretrained_file, tmp_path_factory):
    """A Bayesian search (fit's default tuner) of 4 trials over depth {0, 1} x learning rate."""
    splits, train, val = data
    tuner = make_tuner("bayesian", _hypermodel(splits, pretrained_file), objective="val_accuracy", max_trials=4,
                       directory=tmp_path_factory.mktemp("search"))
    tuner.search(train, validation_data=val, epochs=1, verbose=0)
    return tuner


def test_no_two_trials_share_an_effective_configuration(searched):
    rows = trials_table(searched)
    assert len(rows) == 4 and all(row["status"] == "COMPLETED" for row in rows)
    effective = [json.dumps(row["effective"], sort_keys=True) for row in rows]
    assert len(set(effective)) == len(effective), effective
    probes = [row for row in rows if row["effective"]["trainable_stages"] == 0]
    assert len(probes) == 1 and probes[0]["trial_id"] == "0"  # the probe opens the search, once
    assert "learning_rate" not in probes[0]["effective"]  # it has none: the head is a logistic regression
    assert all("learning_rate" in row["effective"] for row in rows if row not in probes)


def test_trials_record_their_phases_and_a_probe_writes_only_its_head(searched):
    rows = {row["trial_id"]: row for row in trials_table(searched)}
    for row in rows.values():
        assert set(row["phases"]) <= {*PHASES, "other"}
        assert sum(row["phases"].values()) == pytest.approx(row["seconds"], abs=0.1)
    probe = rows["0"]["phases"]
    assert {"build", "weights", "features", "probe", "validate"} <= set(probe) and "train" not in probe
    trained = rows["1"]["phases"]
    assert {"train", "validate", "compile"} <= set(trained)
    assert "build" not in trained  # the classifier built by trial 0 was reset, not built again
    record = json.loads(searched.timings_path.read_text())["0"]
    assert record["phases"] == rows["0"]["phases"] and record["effective"] == rows["0"]["effective"]
    probe_dir = Path(searched.get_trial_dir("0"))
    assert (probe_dir / PROBE_HEAD_FILE).exists() and not (probe_dir / CHECKPOINT_FILE).exists()
    model = searched.load_model(searched.oracle.trials["0"])
    with np.load(probe_dir / PROBE_HEAD_FILE) as head:
        assert np.array_equal(model.get_layer("predictions").get_weights()[0], head["kernel"])


def test_a_repeated_configuration_reuses_the_score_without_training(searched, data):
    _, train, val = data
    twin = searched.oracle.trials["1"]
    again = kt.engine.trial.Trial(twin.hyperparameters.copy(), trial_id="99")
    assert searched.scored_twin(again) is twin
    metrics = searched.run_trial(again, train, validation_data=val, epochs=1)
    assert metrics["val_accuracy"] == twin.score
    assert "train" not in searched.hypermodel.phases.seconds  # nothing trained
    assert not Path(searched.checkpoint_path("99")).exists()


def test_the_oracle_replaces_a_repeated_proposal(monkeypatch, tmp_path):
    """Where the oracle's own proposal repeats an effective configuration (the Gaussian process can),
    an untried one replaces it."""
    monkeypatch.setattr(kt.oracles.BayesianOptimizationOracle, "populate_space",
                        lambda self, trial_id: {"status": "RUNNING",
                                                "values": {"trainable_stages": 0, "learning_rate": 3e-3}})

    def declare(hp):
        hp.Choice("trainable_stages", [0, 1])
        with hp.conditional_scope("trainable_stages", [1]):
            hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")

    class Scored(kt.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            return {"val_accuracy": 0.5}

    oracle = BayesianOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=4, seed=0)
    oracle.openings = []
    tuner = Scored(oracle=oracle, hypermodel=declare, directory=str(tmp_path), project_name="p")
    tuner.search()
    values = [t.hyperparameters.values for t in tuner.oracle.trials.values()]
    assert len(values) == 4
    assert [v for v in values if v["trainable_stages"] == 0] == [{"trainable_stages": 0}]  # once, no rate
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 4


def test_reused_models_start_every_trial_from_the_same_weights(data, pretrained_file):
    splits, _, _ = data
    hypermodel = _hypermodel(splits, pretrained_file, choices=(1, 2))
    hp = kt.HyperParameters()
    hypermodel.declare(hp)
    with hypermodel.reusing_models():
        first = hypermodel.build(hp)
        start = [np.array(v.numpy()) for v in first.weights]
        for variable in first.trainable_weights:
            variable.assign(variable.numpy() + 1.0)  # a trial trained it
        hp.values["trainable_stages"] = 1
        second = hypermodel.build(hp)
        assert second is first
        assert all(np.array_equal(v.numpy(), s) for v, s in zip(second.weights, start, strict=True))
        trainable = {stage_of(layer.name) for layer in backbone_of(second).layers if layer.trainable}
        assert trainable - {None} == {"conv5"}  # this trial's depth, not the first one's
    fresh = hypermodel.build(hp)  # outside the search: a new model
    assert fresh is not first


def test_a_losing_trial_writes_no_checkpoint(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    objective = kt.Objective("val_accuracy", "max")
    for write, name in ((False, "lost.weights.h5"), (True, "won.weights.h5")):
        keep = KeepBestEpoch(objective, str(tmp_path / name), write_if=lambda value, write=write: write)
        keep.set_model(model)
        keep.on_epoch_end(0, {"val_accuracy": 0.5})
        keep.on_train_end()
    assert not (tmp_path / "lost.weights.h5").exists() and (tmp_path / "won.weights.h5").exists()


class CountingBatches(ArrayBatches):
    """ArrayBatches that count the passes over them: requests for their last batch (Keras' TensorFlow
    iterators also read the first batch alone, for its shapes, when they are made)."""

    passes = 0

    def __getitem__(self, index):
        if index == len(self) - 1:
            self.passes += 1
        return super().__getitem__(index)


def test_a_search_scored_by_scikit_learn_passes_over_val_once_per_epoch(data, pretrained_file, tmp_path):
    """An imbalanced search's objective (val_balanced_accuracy, scikit-learn) comes from the epoch's
    one pass over the validation images, not from a second pass beside Keras' own evaluation."""
    splits, train, val = data
    passes, metrics = {}, {}
    for objective in ("val_accuracy", "val_balanced_accuracy"):
        counted = CountingBatches(val.array, val.labels, 1)
        assert len(counted) >= 2
        scored = (counted, val.labels) if objective != "val_accuracy" else None
        hypermodel = ResNetHyperModel(
            SearchSpace(["tiny_resnet"], [1]),
            TrialSettings(num_classes=3, image_size=32, epochs=2, steps_per_epoch=2, batch_size=6, objective=objective),
            weights=pretrained_file, items=(splits.train, splits.val), scored_val=scored)
        tuner = make_tuner("bayesian", hypermodel, objective=objective, max_trials=1, directory=tmp_path / objective)
        tuner.search(train, validation_data=counted, epochs=2, verbose=0)
        passes[objective] = counted.passes
        trial = tuner.oracle.trials["0"]
        metrics[objective] = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        phases = trials_table(tuner)[0]["phases"]
        assert phases["validate"] > 0 and phases["train"] > 0
    assert passes["val_balanced_accuracy"] == passes["val_accuracy"] >= 2  # one pass per epoch in both
    assert {"val_accuracy", "val_loss", "val_balanced_accuracy"} <= set(metrics["val_balanced_accuracy"])
    assert 0.0 <= metrics["val_balanced_accuracy"]["val_balanced_accuracy"] <= 1.0


def test_validation_logs_are_scikit_learn_scores():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

    from resnet_automl.training.metrics import mean_average_precision, validation_logs

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=20).astype(np.float32)
    labels = rng.integers(0, 3, size=20)
    logs = validation_logs(probabilities, labels, balanced=True)
    assert logs["val_accuracy"] == pytest.approx(accuracy_score(labels, probabilities.argmax(1)))
    assert logs["val_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probabilities.argmax(1)))
    assert logs["val_loss"] == pytest.approx(log_loss(labels, probabilities, labels=[0, 1, 2]), rel=1e-5)
    assert set(validation_logs(probabilities, labels)) == {"val_accuracy", "val_loss"}
    targets = (rng.random((20, 3)) > 0.5).astype(np.float32)
    multi = validation_logs(probabilities, targets, multilabel=True)
    assert multi["val_map"] == pytest.approx(mean_average_precision(targets, probabilities))
    assert set(multi) == {"val_accuracy", "val_loss", "val_map"}
