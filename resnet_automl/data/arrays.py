"""Images decoded once into uint8 arrays at the training size, cached on disk and memory-mapped.

Every epoch of every trial then reads uint8 pixels (a quarter of float32's bytes) by index from
one array instead of decoding files again; the array is computed once per (file list, image size)
and written as `.npy` under the run's `cache/` folder, so a resumed run and every trial share it.
When it is larger than the memory limit it stays memory-mapped: memory is flat in the dataset size.

Resizing is bilinear with half-pixel centres and no antialiasing, the arithmetic of
`tf.image.resize` that the exported serving graph applies to decoded bytes, written in numpy so
that no TensorFlow is needed here. Rounding to uint8 moves a pixel by at most half a grey level.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from resnet_automl.runtime import interrupts
from resnet_automl.data.images import load_rgb

#: Bytes of decoded images kept in memory per array by default; larger arrays stay memory-mapped.
DEFAULT_MEMORY_LIMIT = 2 * 2**30


def _interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) weights of half-pixel bilinear interpolation (TensorFlow's clamping)."""
    scale = in_size / out_size
    position = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    floor = np.floor(position)
    lower = np.clip(floor, 0, in_size - 1).astype(int)
    upper = np.clip(np.ceil(position), 0, in_size - 1).astype(int)
    fraction = (position - floor).astype(np.float32)
    matrix = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lower), 1.0 - fraction)
    np.add.at(matrix, (rows, upper), fraction)
    return matrix


def resize_bilinear(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W, C) image to (size, size, C) float32 like `tf.image.resize(..., "bilinear")`."""
    height, width = pixels.shape[:2]
    image = pixels.astype(np.float32)
    if (height, width) == (size, size):
        return image
    rows, cols = _interpolation_matrix(height, size), _interpolation_matrix(width, size)
    return np.einsum("ih,hwc,jw->ijc", rows, image, cols, optimize=True)


def decode_resized(path, size: int) -> np.ndarray:
    """One image file as uint8 RGB pixels (size, size, 3), decoded by Pillow and resized bilinearly."""
    resized = resize_bilinear(load_rgb(path), size)
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


def _decode_into(out: np.ndarray, items: list, image_size: int, workers: int) -> None:
    paths = [path for path, _ in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow releases the GIL while decoding
        for start in range(0, len(paths), 256):
            interrupts.check()
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
        workers: int or None, decoding threads. Defaults to the number of CPUs.
    """
    shape = (len(items), image_size, image_size, 3)
    workers = workers or os.cpu_count() or 1
    if cache_dir is None:
        out = np.empty(shape, np.uint8)
        _decode_into(out, items, image_size, workers)
        return out
    path = Path(cache_dir) / f"images-{image_size}px-{cache_key(items, image_size)}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp-{os.getpid()}.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        try:
            _decode_into(out, items, image_size, workers)
            out.flush()
        except BaseException:
            del out
            tmp.unlink(missing_ok=True)
            raise
        del out
        os.replace(tmp, path)
    array = np.load(path, mmap_mode="r")
    return np.array(array) if array.nbytes <= memory_limit_bytes else array
