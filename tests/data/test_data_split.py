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
    gone = r"changed since this run split it: 1 file\(s\) gone \('red/img_0.png'\).*--overwrite"
    with pytest.raises(DataError, match=gone):
        prepare_data(root, run)
    with pytest.raises(DataError, match="dataset changed.*gone"):  # even kept, a split cannot train on a gone file
        prepare_data(root, run, keep_split=True)


@pytest.mark.parametrize("change,message", [
    (lambda root: make_class_folders(root, classes=("purple",), per_class=4, start_seed=90),
     r"1 class folder\(s\) added \('purple'\); 4 file\(s\) added \('purple/img_0.png', 'purple/img_1.png', "
     r"'purple/img_2.png', \.\.\.\)"),
    (lambda root: make_class_folders(root, classes=("red",), per_class=8, start_seed=70),
     r"2 file\(s\) added \('red/img_6.png', 'red/img_7.png'\); 6 file\(s\) changed"),
    (lambda root: (root / "green" / "img_1.png").write_bytes((root / "green" / "img_1.png").read_bytes() + b"x"),
     r"1 file\(s\) changed \('green/img_1.png'\)"),
])
def test_a_rerun_on_changed_data_stops_and_names_the_change(tmp_path, change, message):
    root = make_class_folders(tmp_path / "d", per_class=6)
    run = tmp_path / "run"
    first = prepare_data(root, run)
    change(root)
    with pytest.raises(DataError, match=message + r".*--overwrite.*--out.*--keep-split"):
        prepare_data(root, run)
    assert prepare_data(root, run, keep_split=True).train == first.train  # asked for: the saved split


def test_a_changed_manifest_stops_the_rerun(tmp_path):
    make_class_folders(tmp_path / "d", per_class=6)
    rows = [f"{c}/img_{i}.png,{c}" for c in ("red", "green", "blue") for i in range(6)]
    manifest = tmp_path / "d" / "labels.csv"
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    run = tmp_path / "run"
    prepare_data(manifest, run)
    assert prepare_data(manifest, run).fingerprint["manifest_sha256"]  # unchanged: reused
    manifest.write_text("path,label\n" + "\n".join(rows[:-1]) + "\n")
    with pytest.raises(DataError, match="the manifest's rows changed"):
        prepare_data(manifest, run)


@pytest.mark.parametrize("content,problem", [
    ("", "it is empty"), ('{"root": "x", "class_na', "it is not valid JSON"), ("[1, 2]", "it holds a JSON list"),
    ('{"root": 1}', "KeyError|TypeError")])
def test_a_damaged_split_file_names_itself_and_the_fix(tmp_path, content, problem):
    from resnet_automl.data.split import DatasetSplits
    from resnet_automl.errors import RunStateError

    path = tmp_path / "split.json"
    path.write_text(content)
    with pytest.raises(RunStateError, match=rf"saved split '{path}' is damaged: ({problem}).*--overwrite"):
        DatasetSplits.load(path)


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
        splits = prepare_data("tfds:mnist", tmp_path / "run", tfds_options={"max_per_split": 40})
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


def test_fit_on_a_run_whose_data_gained_a_class_exits_2_naming_it(tmp_path, capsys):
    from resnet_automl.cli.main import main

    root = make_class_folders(tmp_path / "d", per_class=6)
    run = tmp_path / "run"
    prepare_data(root, run)  # the split of an earlier fit in this folder
    make_class_folders(root, classes=("purple",), per_class=4, start_seed=90)
    code = main(["fit", str(root), "--out", str(run), "--weights", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "class folder(s) added ('purple')" in err and "Traceback" not in err
