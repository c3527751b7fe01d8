"""Decode one image file robustly: the single place that knows about image modes.

Training decodes with Pillow (it reads CMYK and 16-bit files, WebP and EXIF orientation, which
`tf.io.decode_image` does not); resizing happens afterwards with `tf.image.resize`, the same op the
exported serving graph uses, so train and serve see the same pixels for ordinary RGB files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: File name endings treated as images (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
#: Endings the serving graph's `tf.io.decode_image` reads (WebP is not among them).
SERVABLE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})

# Decompression bombs are not a threat model for a user's own training folder, but a 4000x3000
# photo must open; keep Pillow's guard at a generous 200 megapixels instead of disabling it.
Image.MAX_IMAGE_PIXELS = 200_000_000


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to an RGB uint8 array (H, W, 3).

    EXIF orientation is applied; 16-bit greyscale is scaled to 8 bits (Pillow's own conversion
    would clip it); palette, CMYK, greyscale and alpha modes go through Pillow's RGB conversion,
    which drops alpha the way `tf.io.decode_image(channels=3)` does at serving time.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.uint32)
        shift = 8 if image.mode.startswith("I;16") else max(int(pixels.max()).bit_length() - 8, 0)
        grey = (pixels >> shift).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def load_rgb(path: str | os.PathLike | bytes) -> np.ndarray:
    """Read an image file and return RGB uint8 pixels (H, W, 3); first frame of animations."""
    if isinstance(path, bytes):
        path = path.decode("utf-8")
    with Image.open(path) as image:
        image.seek(0)
        return to_rgb_array(image)


def check_image_file(path: Path) -> str | None:
    """Return None when `path` decodes as an image, else a short human reason why not."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot stat file: {exc.strerror or exc}"
    if size == 0:
        return "empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return "cannot read file: permission denied"
    try:
        with Image.open(path) as image:
            image.seek(0)
            image.load()
            if image.width < 1 or image.height < 1:
                return "image has no pixels"
            to_rgb_array(image)
    except UnidentifiedImageError:
        return "not an image (content is not a known image format)"
    except PermissionError:
        return "cannot read file: permission denied"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot decode image: {exc}"
    return None
