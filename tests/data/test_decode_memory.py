"""Decoding large files: pixel limits in the audit, reduced decodes close to full ones, threads capped by
memory, and the smoke run of benchmarks/decode_memory.py."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import make_class_folders
from PIL import Image

from resnet_automl.data import arrays, images, scan_folder
from resnet_automl.data.arrays import decode_resized, load_images, resize_bilinear
from resnet_automl.data.images import check_image_file, decode_threads, load_reduced, load_rgb

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "decode_memory.py"


def full_decode(path, size):
    """The decode that reads every pixel: `load_rgb`, float32 bilinear resize, rounded to uint8."""
    return np.clip(np.rint(resize_bilinear(load_rgb(path), size)), 0, 255).astype(np.uint8)


def smooth_image(width, height):
    """Colour gradients and slow waves: what a photo looks like at a few dozen pixels."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [128 + 100 * np.sin(x / 170 + y / 290), 128 + 100 * np.cos(y / 130), (x + y) / (width + height) * 255]
    return Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8))


def reasons(scan):
    return {os.path.basename(item["path"]): item["reason"] for item in scan.skipped}


@pytest.fixture
def tiny_limit(monkeypatch):
    """MAX_IMAGE_PIXELS at 10,000 (and Pillow's own limit with it) so that bombs are small files."""
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10_000)
    monkeypatch.setattr(images, "IMAGE_DECODE_BYTES", 40_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)


def test_a_bomb_is_skipped_by_the_audit_from_its_header_with_its_size_and_the_limit(tmp_path):
    root = make_class_folders(tmp_path / "data", per_class=3)
    Image.new("L", (9000, 9000), 128).save(root / "red" / "bomb.png")  # 81 MP: Pillow only warns
    with pytest.warns(Image.DecompressionBombWarning):
        scan = scan_folder(root)
    why = reasons(scan)["bomb.png"]
    assert "9,000 x 9,000 = 81,000,000 pixels" in why and "limit of 64,000,000 pixels" in why
    assert not any(path.endswith("bomb.png") for path, _ in scan.images["all"])


def test_pillows_own_bomb_error_and_lower_limits_are_reasons_too(tmp_path, tiny_limit):
    root = make_class_folders(tmp_path / "data", per_class=3, size=16)
    Image.new("L", (300, 300)).save(root / "red" / "huge.png")  # over twice the limit: Pillow raises
    Image.new("L", (110, 100)).save(root / "red" / "large.png")  # over the limit: Pillow warns, we refuse
    Image.new("RGB", (60, 60)).save(root / "red" / "wide.webp")  # WebP: a quarter of the limit
    with pytest.warns(Image.DecompressionBombWarning):
        why = reasons(scan_folder(root))
    assert why["huge.png"].startswith("image too large: 90,000 pixels, over the limit of 10,000 pixels")
    assert "110 x 100 = 11,000 pixels, over the limit of 10,000" in why["large.png"]
    assert "3,600 pixels, over the limit of 2,500 pixels for WebP" in why["wide.webp"]
    with pytest.raises(images.ImageTooLargeError, match="90,000 pixels"):
        load_images([(str(root / "red" / "huge.png"), 0)], 16)


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_a_large_jpeg_is_decoded_small_and_close_to_the_full_decode(tmp_path, orientation):
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    smooth_image(3001, 2003).save(path, quality=95, exif=exif.tobytes())
    pixels, window = load_reduced(path, 64)
    assert all(64 <= side <= 128 for side in pixels.shape[:2])
    top, left, tall, wide = window
    assert 0 <= top < 1 and 0 <= left < 1 and tall <= pixels.shape[0] and wide <= pixels.shape[1]
    decoded = load_images([(str(path), 0)], 64)
    assert decoded.shape == (1, 64, 64, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded[0].astype(int) - full_decode(path, 64)).mean() < 2


@pytest.mark.parametrize("mode,suffix", [("RGBA", ".png"), ("P", ".gif"), ("L", ".bmp"), ("CMYK", ".jpg"),
                                         ("I;16", ".png")])
def test_other_formats_are_reduced_in_uint8_before_the_resize(tmp_path, mode, suffix):
    image = smooth_image(1001, 701)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image)[..., 0].astype(np.uint16) * 257)
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    elif mode != "RGB":
        image = image.convert(mode)
    path = tmp_path / f"big{suffix}"
    image.save(path)
    pixels, _ = load_reduced(path, 32)
    assert pixels.dtype == np.uint8 and all(32 <= side <= 64 for side in pixels.shape[:2])
    limit = 4 if mode == "P" else 2  # an adaptive palette's steps are coarse where the old path point-samples
    assert np.abs(decode_resized(path, 32).astype(int) - full_decode(path, 32)).mean() < limit


@pytest.mark.parametrize("shape", [(28, 28), (50, 37), (32, 32), (63, 40), (7, 90)])
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_images_near_the_training_size_keep_their_exact_pixels(tmp_path, shape, suffix):
    path = tmp_path / f"small{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*shape, 3)).astype(np.uint8)).save(path)
    if max(shape) < 2 * 32:
        assert np.array_equal(decode_resized(path, 32), full_decode(path, 32))
    else:
        assert decode_resized(path, 32).shape == (32, 32, 3)


def test_a_truncated_large_jpeg_is_still_reported_corrupt(tmp_path):
    whole = tmp_path / "whole.jpg"
    smooth_image(1600, 1200).save(whole, quality=90, progressive=True)
    data = whole.read_bytes()
    for fraction in (0.3, 0.95):
        cut = tmp_path / f"cut{fraction}.jpg"
        cut.write_bytes(data[: int(len(data) * fraction)])
        assert "cannot decode image" in check_image_file(cut)
    assert check_image_file(whole) is None


def test_decode_threads_are_capped_by_memory(monkeypatch):
    cap = images.DECODE_MEMORY_BYTES // images.IMAGE_WORKING_SET_BYTES
    assert cap == 4 and images.IMAGE_WORKING_SET_BYTES >= 4 * images.MAX_IMAGE_PIXELS
    assert decode_threads(64) == cap and decode_threads(1) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert decode_threads() == 2
    monkeypatch.setattr(images, "DECODE_MEMORY_BYTES", images.IMAGE_WORKING_SET_BYTES // 2)
    assert decode_threads(16) == 1


def test_load_images_and_the_audit_use_no_more_threads_than_the_cap(monkeypatch, image_folder):
    seen = []
    real = arrays.ThreadPoolExecutor

    def recording(max_workers=None, **kwargs):
        seen.append(max_workers)
        return real(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(arrays, "ThreadPoolExecutor", recording)
    items = [(str(p), 0) for p in sorted(image_folder.rglob("*.png"))]
    load_images(items, 16)
    load_images(items, 16, workers=32)
    from resnet_automl.data import scan as scan_module

    monkeypatch.setattr(scan_module, "ThreadPoolExecutor", recording)
    scan_folder(image_folder, workers=32)
    assert seen == [4, 4, 4]


def test_benchmark_smoke_run(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("benchmark_decode_memory", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--workdir", str(tmp_path / "work")]) == 0
    out = capsys.readouterr().out
    assert "old/new:" in out and "bomb.png skipped: image too large: 9,000 x 9,000" in out
