"""Backbones: published parameter counts, one builder for every variant, grouped-conv forms,
freeze depth, and the keras.applications weight route."""
from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from resnet_automl.backbones import REGISTRY, build_backbone, get_spec, set_trainable_stages
from resnet_automl.cli.main import main
from resnet_automl.errors import ConfigError, WeightsError
from resnet_automl.weights import imagenet_keras as weights_module
from resnet_automl.weights.loading import load_backbone_weights

TORCHVISION_PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336,
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_match_torchvision(name):
    model = build_backbone(name, (224, 224, 3), layout="torch", include_top=True)
    assert trainable_count(model) == TORCHVISION_PARAMS[name] == REGISTRY[name].params


def test_keras_layout_matches_keras_applications_count():
    assert build_backbone("resnet50", (224, 224, 3), layout="keras", include_top=True).count_params() == 25_636_712


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_variant_builds_headless_at_32px(name):
    spec = REGISTRY[name]
    model = build_backbone(name, (32, 32, 3))
    out = model(np.zeros((1, 32, 32, 3), "float32"))
    channels = spec.stage_widths[-1] * (4 if spec.block == "bottleneck" else 1)
    side = 1 if spec.stem == "imagenet" else 32 // math.prod(spec.strides)  # 32x, or the CIFAR stages' strides
    assert tuple(out.shape) == (1, side, side, channels)
    first = "conv2_block1_1_conv" if spec.depths[0] else "conv3_block1_1_conv"
    assert model.get_layer(first) is not None and model.layers[-1].name.startswith("conv5_block")


#: Parameters of the CIFAR ResNets with 10 classes (He et al. 2016, table 6: 0.27M, 0.46M, 0.85M).
CIFAR_PARAMS = {"resnet20": 272_474, "resnet32": 466_906, "resnet56": 855_770}


@pytest.mark.parametrize("name", sorted(CIFAR_PARAMS))
def test_cifar_style_nets_match_the_paper(name):
    model = build_backbone(name, (32, 32, 3), include_top=True, classes=10)
    assert trainable_count(model) == CIFAR_PARAMS[name] == REGISTRY[name].params
    assert round(trainable_count(model) / 1e6, 2) in (0.27, 0.47, 0.86)
    assert not REGISTRY[name].has_imagenet_weights and "conv1_conv" in [layer.name for layer in model.layers]
    assert not any(layer.name.startswith(("pool1", "conv2_")) for layer in model.layers)  # no pool, no conv2


def test_lean_resnet20_is_resnet20_at_half_resolution_after_the_stem():
    lean = build_backbone("resnet20_lean", (32, 32, 3), include_top=True, classes=10)
    plain = build_backbone("resnet20", (32, 32, 3), include_top=True, classes=10)
    assert trainable_count(lean) == REGISTRY["resnet20_lean"].params == trainable_count(plain) + 16 * 16 + 2 * 16
    assert lean.get_layer("conv1_conv").output.shape[1:3] == (32, 32)  # the stem keeps full resolution
    assert lean.get_layer("conv3_block1_out").output.shape[1:3] == (16, 16)
    assert plain.get_layer("conv3_block1_out").output.shape[1:3] == (32, 32)
    assert REGISTRY["resnet20_lean"].gflops_224 == pytest.approx(REGISTRY["resnet20"].gflops_224 / 4, rel=0.05)


def test_grouped_convolution_forms_agree():
    split = build_backbone("resnext50_32x4d", (32, 32, 3), grouped_mode="split")
    native = build_backbone("resnext50_32x4d", (32, 32, 3), grouped_mode="native")
    native.set_weights(split.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    assert np.max(np.abs(split(x).numpy() - native(x).numpy())) < 1e-5
    grouped = split.get_layer("conv2_block1_2_conv")
    assert grouped.kernel.shape == (3, 3, 4, 128) and grouped.groups == 32


@pytest.mark.parametrize("k", range(6))
def test_trainable_stages_selects_the_last_k(k):
    model = build_backbone("tiny_resnet", (32, 32, 3))
    set_trainable_stages(model, k)
    stages = {w.path.split("/")[0].split("_")[0] for w in model.trainable_weights}
    assert stages == set(["conv1", "conv2", "conv3", "conv4", "conv5"][5 - k:])


def test_frozen_batchnorm_statistics_do_not_move_in_fit():
    backbone = build_backbone("tiny_resnet", (32, 32, 3), bn_momentum=0.5)
    set_trainable_stages(backbone, 2)
    x = keras.Input((32, 32, 3))
    y = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(backbone(x)))
    model = keras.Model(x, y)
    model.compile("sgd", "sparse_categorical_crossentropy")
    frozen = backbone.get_layer("conv2_block1_1_bn")
    live = backbone.get_layer("conv5_block1_1_bn")
    before_frozen, before_live = frozen.moving_mean.numpy().copy(), live.moving_mean.numpy().copy()
    data = np.random.default_rng(1).uniform(0, 5, (8, 32, 32, 3)).astype("float32")
    model.fit(data, np.arange(8) % 2, epochs=1, batch_size=4, verbose=0)
    assert np.array_equal(before_frozen, frozen.moving_mean.numpy())
    assert not np.array_equal(before_live, live.moving_mean.numpy())


def test_trainable_stages_rejects_out_of_range():
    with pytest.raises(ValueError, match="trainable_stages must be an integer in 0..5"):
        set_trainable_stages(build_backbone("tiny_resnet", (32, 32, 3)), 6)


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ConfigError, match=r"must be one of .*resnet18.*Received: backbone='resnet19'"):
        get_spec("resnet19")


def test_keras_applications_weights_load_exactly(tmp_path, monkeypatch):
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    reference.set_weights([np.random.default_rng(i).normal(0, 0.05, w.shape).astype("float32") + (
        1.0 if "variance" in w.path else 0.0) for i, w in enumerate(reference.weights)])
    path = tmp_path / "resnet50_notop.weights.h5"
    reference.save_weights(path)
    monkeypatch.setattr(weights_module, "keras_weights_file", lambda name: str(path))
    ours = build_backbone("resnet50", (64, 64, 3))
    assert "ImageNet" in load_backbone_weights(ours, get_spec("resnet50"), "imagenet")
    x = np.random.default_rng(7).normal(0, 50, (2, 64, 64, 3)).astype("float32")
    assert np.max(np.abs(reference(x).numpy() - ours(x).numpy())) < 1e-4


def test_offline_imagenet_error_names_file_url_cache_and_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://...: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsError) as info:
        load_backbone_weights(build_backbone("resnet50", (32, 32, 3)), get_spec("resnet50"), "imagenet")
    message = str(info.value)
    for part in ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "https://storage.googleapis.com",
                 str(tmp_path / "kh" / "models"), "weights=None"):
        assert part in message


def test_imagenet_for_torchvision_only_backbones_points_at_conversion(tmp_path, monkeypatch):
    from resnet_automl.weights import imagenet_torchvision as torchvision_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))  # no converted file in this cache

    def offline(url, dest):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision_weights, "_download", offline)
    with pytest.raises(WeightsError, match="resnet-automl weights import resnet18"):
        load_backbone_weights(build_backbone("resnet18", (32, 32, 3)), get_spec("resnet18"), "imagenet")


def test_weights_path_roundtrip_and_bad_path(tmp_path):
    spec = get_spec("tiny_resnet")
    first = build_backbone(spec, (32, 32, 3))
    path = tmp_path / "tiny.weights.h5"
    first.save_weights(path)
    second = build_backbone(spec, (32, 32, 3))
    load_backbone_weights(second, spec, str(path))
    x = np.ones((1, 32, 32, 3), "float32")
    assert np.allclose(first(x), second(x))
    with pytest.raises(WeightsError, match=r"Received: weights='.*nope.h5' \(no such file\)"):
        load_backbone_weights(second, spec, str(tmp_path / "nope.h5"))


def test_cli_backbones_json(capsys):
    assert main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows][:2] == ["resnet18", "resnet34"] and len(rows) == 11
    assert {r["name"] for r in rows if r["stem"] == "cifar"} == {"resnet20", "resnet20_lean", "resnet32", "resnet56"}
    assert all(r["params"] > 0 and r["gflops_224"] > 0 for r in rows)
