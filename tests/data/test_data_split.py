"""Split: stratified, seeded, saved for resume; pre-split trees; TFDS through mock data."""
from __future__ import annotations

import json

import pytest
from conftest import make_class_folders

from resnet_automl.data import prepare_data, scan_folder, split_scan
from resnet_automl.errors import DataError


def test_split_is_stratified_and_reproducible(tmp_path):
    root = make_class_folders(tmp_path / "d", per_class=10)
    a = split_scan(scan_folder(root), seed=3)
    b = split_scan(scan_folder(root), seed=3)
    c = split_scan(scan_folder(root), seed=4)
    assert a.train == b.train and a.test == b.test
    assert a.test != c.test or a.val != c.val
    for split in ("train", "val", "test"):
        assert {label for _, label in a.split(split)} == {0, 1, 2}
    all_paths = [p for s in ("train", "val", "test") for p, _ in a.split(s)]
    assert len(all_paths) == len(set(all_paths)) == 30


def test_class_with_too_few_images(tmp_path):
    root = make_class_folders(tmp_path / "d", per_class=5)
    for extra in (root / "blue").glob("img_[2-4].png"):
        extra.unlink()
    with pytest.raises(DataError, match=r"Class 'blue' has 2 readable image\(s\).*at least 3"):
        split_scan(scan_folder(root))


def test_saved_split_is_reused_and_checked(tmp_path):
    root = make_class_folders(tmp_path / "d", per_class=6)
    run = tmp_path / "run"
    first = prepare_data(root, run, seed=1)
    saved = json.loads((run / "data" / "split.json").read_text())
    assert saved["class_names"] == ["blue", "green", "red"]
    assert prepare_data(root, run, seed=999).test == first.test  # the saved split wins
    (root / "red" / "img_0.png").unlink()
    with pytest.raises(DataError, match="dataset changed.*--overwrite"):
        prepare_data(root, run)


def test_imbalance_gives_class_weights(tmp_path):
    root = make_class_folders(tmp_path / "d", classes=("a",), per_class=20)
    make_class_folders(root, classes=("b",), per_class=5, start_seed=500)
    splits = prepare_data(root)
    assert splits.audit["imbalanced"] is True
    weights = splits.class_weights()
    assert weights[1] > weights[0]


def test_presplit_tree(tmp_path):
    root = tmp_path / "d"
    make_class_folders(root / "train", per_class=5)
    make_class_folders(root / "validation", per_class=2, start_seed=50)
    splits = prepare_data(root)
    assert len(splits.val) == 6 and splits.audit["layout"].startswith("train/val/test")
    assert len(splits.test) >= 3 and len(splits.train) + len(splits.test) == 15


def test_presplit_class_sets_must_agree(tmp_path):
    root = tmp_path / "d"
    make_class_folders(root / "train", per_class=3)
    make_class_folders(root / "val", classes=("red", "green"), per_class=2)
    with pytest.raises(DataError, match="different class folders.*val/"):
        prepare_data(root)


def test_tfds_source_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40, data_dir=str(tmp_path / "tfds_meta")):
        splits = prepare_data("tfds:mnist", tmp_path / "run", tfds_max_per_split=40)
    assert splits.num_classes == 10
    assert splits.audit["source"] == "tfds:mnist"
    assert len(splits.test) > 0 and len(splits.train) > 0


@pytest.mark.parametrize("side, pretrained, accelerator, expected", [
    (28, False, False, 28),   # Fashion-MNIST from random initialisation: its own size, not 32
    (32, False, False, 32),
    (26, False, False, 26),
    (8, False, False, 32),    # 8 px digits: upsampled to 32 (NATIVE_MIN_SIDE)
    (28, True, False, 64),    # pretrained: ImageNet nets want room, 64..128 on CPU
    (48, False, False, 48),   # from random initialisation up to 64 px: its own size, a multiple of 8
    (56, False, False, 56),
    (50, False, False, 56),
    (48, True, False, 64),
    (72, False, False, 96),   # above 64 px: a multiple of 32 again
    (300, False, False, 128),
    (300, False, True, 224),
])
def test_auto_image_size_by_median_side(tmp_path, side, pretrained, accelerator, expected):
    from resnet_automl.planning.image_size import auto_image_size

    data = make_class_folders(tmp_path / "data", classes=("a", "b"), per_class=4, size=side)
    splits = split_scan(scan_folder(data), seed=0, val_fraction=0.25, test_fraction=0.25)
    assert auto_image_size(splits, accelerator, pretrained=pretrained) == expected
