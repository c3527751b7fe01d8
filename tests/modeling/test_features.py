"""Frozen-prefix feature cache: same losses as the full model, reuse on resume, bounded memory."""
from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import batches, make_class_folders

from resnet_automl.data import prepare_data
from resnet_automl.data.arrays import load_images
from resnet_automl.modeling.classifier import build_classifier
from resnet_automl.modeling.features import FeatureCache, feature_dataset, split_classifier
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.search.space import SearchSpace, TrialSettings


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return prepare_data(make_class_folders(tmp_path_factory.mktemp("f") / "data", per_class=8))


def _hypermodel(splits, cache, stages):
    settings = TrialSettings(num_classes=3, image_size=32, epochs=3, steps_per_epoch=3, batch_size=6, seed=5,
                             dropout=0.0)
    return ResNetHyperModel(SearchSpace(["tiny_resnet"], [stages]), settings, feature_cache=cache,
                            items=(splits.train, splits.val))


@pytest.mark.parametrize("stages", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_cached_trial_matches_the_full_model(splits, stages):
    histories = []
    for cache in (FeatureCache(None, dtype="float32"), None):
        hypermodel, hp = _hypermodel(splits, cache, stages), kt.HyperParameters()
        keras.utils.set_random_seed(0)
        model = hypermodel.build(hp)
        train = batches(splits.train, 32, 6, shuffle=True, seed=5)
        val = batches(splits.val, 32, 6)
        history = hypermodel.fit(hp, model, train, validation_data=val, epochs=3, verbose=0)
        histories.append(history.history)
    cached, full = histories
    print(f"trainable_stages={stages}: cached losses {cached['loss']}, full {full['loss']}")
    assert np.allclose(cached["loss"], full["loss"], rtol=1e-4, atol=1e-5)
    assert np.allclose(cached["val_loss"], full["val_loss"], rtol=1e-4, atol=1e-5)


def test_tail_shares_weights_with_the_full_model(splits):
    model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=2)
    prefix, tail = split_classifier(model, 2)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert np.allclose(tail(prefix(x, training=False), training=False), model(x, training=False), atol=1e-5)
    assert {w.path for w in tail.trainable_weights} == {w.path for w in model.trainable_weights}


def test_cache_is_reused_from_disk_and_memory_stays_bounded(splits, tmp_path):
    model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=1)
    prefix, _ = split_classifier(model, 1)
    key = FeatureCache.key("tiny_resnet", None, 32, 4, splits.train)
    first = FeatureCache(tmp_path, memory_limit_bytes=1)
    features = first.features(key, prefix, load_images(splits.train, 32), 4)
    assert isinstance(features, np.memmap) and features.dtype == np.float16 and first.computed == 1
    again = FeatureCache(tmp_path)  # a resumed run
    reloaded = again.features(key, prefix, load_images(splits.train, 32), 4)
    assert again.reused == 1 and again.computed == 0 and np.array_equal(features, reloaded)
    labels = [label for _, label in splits.train]
    x, y = feature_dataset(features, labels, 4, shuffle=True)[0]
    assert x.shape[0] == 4 and x.dtype.name == "float32" and list(x.shape[1:]) == list(features.shape[1:])


def test_cached_trials_checkpoint_the_best_epoch_of_the_full_model(splits, tmp_path):
    from resnet_automl.search.tuner import make_tuner

    hypermodel = _hypermodel(splits, FeatureCache(tmp_path / "cache"), 2)
    tuner = make_tuner("random", hypermodel, objective="val_accuracy", max_trials=1, directory=tmp_path)
    train = batches(splits.train, 32, 6, shuffle=True, seed=5)
    val = batches(splits.val, 32, 6)
    tuner.search(train, validation_data=val, epochs=3, verbose=0)
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.load_model(best)  # a full classifier with the checkpointed weights
    accuracy = model.evaluate(val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(best.score, abs=1e-6)
