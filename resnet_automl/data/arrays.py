"""Images decoded once into uint8 arrays at the training size, cached on disk and memory-mapped.

Every epoch of every trial then reads uint8 pixels (a quarter of float32's bytes) by index from
one array instead of decoding files again; the array is computed once per (file list, image size)
and written as `.npy` under the run's `cache/` folder, so a resumed run and every trial share it.
When it is larger than the memory limit it stays memory-mapped: memory is flat in the dataset size.

Resizing is bilinear with half-pixel centres and no antialiasing, the arithmetic of
`tf.image.resize` that the exported serving graph applies to decoded bytes, written in numpy so
that no TensorFlow is needed here. Rounding to uint8 moves a pixel by at most half a grey level.
An image with both sides under twice the training side is resized from all its pixels; a larger
one is first decoded smaller (`images.load_reduced`: JPEG DCT scaling, uint8 box averaging) to
sides within 1x..2x the training side, so no float32 array exceeds (2 * size)^2 * 3 values, and
`images.decode_threads` caps the decoding threads by memory.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from resnet_automl.config.options import IN_MEMORY_LIMIT_BYTES
from resnet_automl.data.images import decode_threads, load_reduced
from resnet_automl.runtime.files import atomic_path

#: Bytes of decoded images kept in memory per array by default; larger arrays stay memory-mapped.
DEFAULT_MEMORY_LIMIT = IN_MEMORY_LIMIT_BYTES


def _interpolation_matrix(in_size: int, out_size: int, start: float = 0.0,
                          length: float | None = None) -> np.ndarray:
    """(out_size, in_size) weights of half-pixel bilinear interpolation (TensorFlow's clamping).

    The output spans input positions `start` .. `start` + `length` (float, in input pixels; defaults
    0 and `in_size`): a box-reduced side can be longer than the picture it holds (`images.load_reduced`).
    """
    scale = (in_size if length is None else length) / out_size
    position = start + (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    floor = np.floor(position)
    lower = np.clip(floor, 0, in_size - 1).astype(int)
    upper = np.clip(np.ceil(position), 0, in_size - 1).astype(int)
    fraction = (position - floor).astype(np.float32)
    matrix = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lower), 1.0 - fraction)
    np.add.at(matrix, (rows, upper), fraction)
    return matrix


def resize_bilinear(pixels: np.ndarray, size: int, window: tuple[float, ...] | None = None) -> np.ndarray:
    """Resize an (H, W, C) image to (size, size, C) float32 like `tf.image.resize(..., "bilinear")`.

    Args:
        pixels: array (H, W, C), any numeric dtype.
        size: int, output side.
        window: (top, left, height, width) floats or None, where the picture lies in `pixels` (from
            `images.load_reduced`). Defaults to (0, 0, H, W), the whole array.
    """
    height, width = pixels.shape[:2]
    top, left, tall, wide = window or (0.0, 0.0, height, width)
    image = pixels.astype(np.float32)
    if (height, width) == (size, size) and (top, left, tall, wide) == (0, 0, size, size):
        return image
    rows = _interpolation_matrix(height, size, top, tall)
    cols = _interpolation_matrix(width, size, left, wide)
    return np.einsum("ih,hwc,jw->ijc", rows, image, cols, optimize=True)


def decode_resized(path, size: int) -> np.ndarray:
    """One image file as uint8 RGB pixels (size, size, 3): `load_reduced`, then resized bilinearly."""
    pixels, window = load_reduced(path, size)
    resized = resize_bilinear(pixels, size, window)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def cache_key(items: list, image_size: int) -> str:
    """A key for (file list, image size): paths, byte sizes and modification times."""
    described = []
    for path, _ in items:
        try:
            stat = os.stat(path)
            described.append([str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            described.append([str(path), None, None])
    text = json.dumps([image_size, described])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _check_ctrl_c() -> None:
    """`runtime.interrupts.check()` once a fit has loaded that module.

    Without it no Ctrl-C handler is installed, so none can be pending; looking the module up instead
    of importing it keeps Keras (which it imports) out of processes that only decode images.
    """
    interrupts = sys.modules.get("resnet_automl.runtime.interrupts")
    if interrupts is not None:
        interrupts.check()


def _decode_into(out: np.ndarray, items: list, image_size: int, workers: int) -> None:
    paths = [path for path, _ in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow releases the GIL while decoding
        for start in range(0, len(paths), 256):
            _check_ctrl_c()
            chunk = paths[start:start + 256]
            for offset, pixels in enumerate(pool.map(lambda p: decode_resized(p, image_size), chunk)):
                out[start + offset] = pixels


def load_images(items: list, image_size: int, cache_dir=None, *,
                memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT, workers: int | None = None) -> np.ndarray:
    """uint8 pixels [N, image_size, image_size, 3] of `items` (list of (path, label)), in order.

    Args:
        items: list of (path, label); labels are ignored here.
        image_size: int, square side in pixels.
        cache_dir: folder for the `.npy` file (`DIR/cache`), or None to decode into memory only.
            An existing file for the same files and size is reused without decoding.
        memory_limit_bytes: int, arrays up to this size are read into memory; larger ones stay
            memory-mapped. Defaults to 2 GiB.
        workers: int or None, decoding threads wanted, capped by `decode_threads` (memory).
            Defaults to the number of CPUs.
    """
    shape = (len(items), image_size, image_size, 3)
    workers = decode_threads(workers)
    if cache_dir is None:
        out = np.empty(shape, np.uint8)
        _decode_into(out, items, image_size, workers)
        return out
    path = Path(cache_dir) / f"images-{image_size}px-{cache_key(items, image_size)}.npy"
    if not path.exists():
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            try:
                _decode_into(out, items, image_size, workers)
                out.flush()
            finally:
                del out
    array = np.load(path, mmap_mode="r")
    return np.array(array) if array.nbytes <= memory_limit_bytes else array
