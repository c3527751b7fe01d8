"""Audit: every bad-file kind is skipped with a reason; good odd formats are read as RGB."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest import make_class_folders, write_image
from PIL import Image

from resnet_automl.data import load_rgb, scan_folder
from resnet_automl.errors import DataError


def reasons(scan):
    return {os.path.basename(item["path"]): item["reason"] for item in scan.skipped}


@pytest.fixture
def messy(tmp_path):
    root = make_class_folders(tmp_path / "data", per_class=4)
    good = root / "red"
    (good / "zero.jpg").write_bytes(b"")
    (good / "notes.jpg").write_text("this is text, not a JPEG")
    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 0, 0)).save(jpeg, "JPEG")
    (good / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (good / ".hidden.png").write_bytes(b"x")
    (good / "readme.txt").write_text("hi")
    (root / "stray.png").write_bytes(b"x")
    (root / ".git").mkdir()
    return root


def test_bad_files_are_skipped_with_reasons(messy):
    scan = scan_folder(messy)
    why = reasons(scan)
    assert why["zero.jpg"] == "empty file (0 bytes)"
    assert "not an image" in why["notes.jpg"]
    assert "cannot decode" in why["truncated.jpg"]
    assert why[".hidden.png"] == "hidden file"
    assert "not an image file extension (.txt)" in why["readme.txt"]
    assert "stray file" in why["stray.png"]
    assert "hidden entry" in why[".git"]
    assert scan.class_names == ["blue", "green", "red"]
    assert sum(1 for _, c in scan.images["all"] if c == "red") == 4


@pytest.mark.parametrize("mode,suffix", [("CMYK", ".jpg"), ("RGBA", ".png"), ("P", ".gif"),
                                         ("L", ".bmp"), ("RGB", ".webp"), ("I;16", ".png")])
def test_unusual_modes_decode_to_rgb(tmp_path, mode, suffix):
    path = tmp_path / f"img{suffix}"
    if mode == "I;16":
        Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(path)
    else:
        write_image(path, (10, 200, 30), mode=mode)
    pixels = load_rgb(path)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rot.jpg"
    image.save(path, exif=exif.tobytes())
    assert load_rgb(path).shape[:2] == (40, 20)


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    root = make_class_folders(tmp_path / "d", per_class=4)
    locked = write_image(root / "red" / "locked.png")
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads every file: make the permission check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(locked) else real_access(p, m))
    assert "permission denied" in reasons(scan_folder(root))["locked.png"]


def test_duplicates_within_class_are_dropped_and_flagged(tmp_path):
    root = make_class_folders(tmp_path / "d", per_class=4)
    (root / "red" / "copy.png").write_bytes((root / "red" / "img_0.png").read_bytes())
    (root / "green" / "cross.png").write_bytes((root / "red" / "img_1.png").read_bytes())
    scan = scan_folder(root)
    why = reasons(scan)
    assert "exact duplicate" in (why.get("copy.png") or why.get("img_0.png"))
    assert len(scan.duplicates) == 2


def test_symlinks_and_loops(tmp_path):
    root = make_class_folders(tmp_path / "d", per_class=4)
    (root / "red" / "link.png").symlink_to(root / "green" / "img_0.png")
    (root / "red" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    (root / "red" / "loop").symlink_to(root / "red")
    scan = scan_folder(root)
    why = reasons(scan)
    assert why["broken.png"] == "broken symbolic link"
    assert "not followed" in why["loop"]


def test_nested_folders_belong_to_their_class(tmp_path):
    root = make_class_folders(tmp_path / "d", per_class=3)
    write_image(root / "red" / "2019" / "deep.png", seed=99)
    scan = scan_folder(root)
    assert any(p.endswith("deep.png") and c == "red" for p, c in scan.images["all"])


@pytest.mark.parametrize("setup,match", [
    (lambda r: None, "does not exist"),
    (lambda r: r.write_text("x"), "is a file, not a folder"),
    (lambda r: r.mkdir(), "No class folders found"),
    (lambda r: make_class_folders(r, classes=("only",)), "Only one class folder"),
    (lambda r: (make_class_folders(r, classes=("a", "b")), (r / "c").mkdir()), "No readable image in class 'c'"),
])
def test_folder_errors_name_the_path(tmp_path, setup, match):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=match) as info:
        scan_folder(root)
    assert str(root) in str(info.value)


def test_unicode_and_html_class_names(tmp_path):
    root = make_class_folders(tmp_path / "d", classes=("café au lait", "<b>&\"x'<i>"), per_class=3)
    assert scan_folder(root).class_names == sorted(["café au lait", "<b>&\"x'<i>"])
