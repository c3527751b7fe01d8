"""Decode one image file robustly: the single place that knows about image modes and image sizes.

Training decodes with Pillow (it reads CMYK and 16-bit files, WebP and EXIF orientation, which
`tf.io.decode_image` does not); resizing happens afterwards with the arithmetic of `tf.image.resize`,
the op the exported serving graph uses, so train and serve see the same pixels for ordinary files.

Large files are never decoded to full-size float arrays: `load_reduced` decodes a JPEG with DCT
scaling (Pillow's draft mode) and shrinks any image by whole-pixel box averaging in uint8 until
each side lies within 1x..2x of the training side. Files over `MAX_IMAGE_PIXELS` (fewer for formats
whose decoder needs more memory, `pixel_limit`) are refused before any pixel is decoded, and
`decode_threads` bounds how many decodes run at once by memory.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

#: File name endings treated as images (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
#: Endings the serving graph's `tf.io.decode_image` reads (WebP is not among them).
SERVABLE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})

#: int, the most pixels (width x height, as stored in the file) an image may have: 64 megapixels.
#: It admits every camera up to 61 MP (9504 x 6336); Pillow holds a decoded pixel in at most 4 bytes
#: (RGB, RGBA, CMYK, 32-bit grey), so a full decode at the limit takes `IMAGE_DECODE_BYTES` (256 MB;
#: 192 MB of it as uint8 RGB). It is also Pillow's `Image.MAX_IMAGE_PIXELS`. A larger file (a
#: 20,000 x 20,000 PNG is 400 MP, 1.6 GB decoded, from a few hundred KB on disk) is skipped by the
#: audit with its size and the limit in the reason, from its header alone.
MAX_IMAGE_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
#: int, bytes one image may hold while decoded in full: `MAX_IMAGE_PIXELS` at 4 bytes a pixel.
#: Formats whose decoder holds more a pixel get proportionally fewer pixels (`pixel_limit`).
IMAGE_DECODE_BYTES = 4 * MAX_IMAGE_PIXELS
#: int, pixels of one full-resolution strip converted to RGB at a time while reducing: 256 Ki.
STRIP_PIXELS = 2**18
#: int, bytes one decode holds at worst: `IMAGE_DECODE_BYTES`, plus one strip cropped and converted
#: to RGB (4 bytes a pixel each) and its reduced copy; about 259 MB.
IMAGE_WORKING_SET_BYTES = IMAGE_DECODE_BYTES + 3 * 4 * STRIP_PIXELS
#: int, bytes of decoding memory that the decode threads may hold together: 1 GiB (4 threads).
DECODE_MEMORY_BYTES = 2**30
#: int, the side (px) the audit decodes to: every byte of the file is read, few pixels are kept.
AUDIT_SIZE = 16

_INTEGER_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")
#: EXIF orientation -> (Pillow transpose, stored rows reversed, stored columns reversed, axes swapped).
_ORIENTATION = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT, False, True, False),
    3: (Image.Transpose.ROTATE_180, True, True, False),
    4: (Image.Transpose.FLIP_TOP_BOTTOM, True, False, False),
    5: (Image.Transpose.TRANSPOSE, False, False, True),
    6: (Image.Transpose.ROTATE_270, True, False, True),
    7: (Image.Transpose.TRANSVERSE, True, True, True),
    8: (Image.Transpose.ROTATE_90, False, True, True),
}


class ImageTooLargeError(Image.DecompressionBombError):
    """An image file has more pixels than its limit (`pixel_limit`); the message names both counts.

    Attributes:
        pixels: int, the file's width x height.
        limit: int, the most pixels allowed for its format.
    """

    def __init__(self, pixels: int, limit: int, size: tuple[int, int] | None = None, why: str = ""):
        shape = f"{size[0]:,} x {size[1]:,} = " if size else ""
        super().__init__(f"image too large: {shape}{pixels:,} pixels, over the limit of {limit:,} pixels{why} "
                         f"(MAX_IMAGE_PIXELS is {MAX_IMAGE_PIXELS:,}); downscale the file or remove it")
        self.pixels = pixels
        self.limit = limit


def decode_threads(requested: int | None = None) -> int:
    """Threads that may decode images at once: `requested` capped by memory.

    Args:
        requested: int or None, threads wanted. Defaults to the number of CPUs.

    Returns:
        int >= 1: min(requested, DECODE_MEMORY_BYTES // IMAGE_WORKING_SET_BYTES), at most 4 by default.
    """
    requested = requested or os.cpu_count() or 1
    return max(1, min(requested, DECODE_MEMORY_BYTES // IMAGE_WORKING_SET_BYTES))


def pixel_limit(image: Image.Image) -> tuple[int, str]:
    """(most pixels, why it is lower than `MAX_IMAGE_PIXELS` or "") for an opened image's format.

    Pillow holds up to 4 bytes a pixel; WebP's decoder 16 (libwebp's canvas, its copy as bytes and
    Pillow's image), so WebP gets a quarter of the pixels. A progressive JPEG keeps every DCT
    coefficient (2 bytes each, 1.5 to 4 a pixel with chroma subsampling) until its last scan, on
    top of the 4 bytes of the decoded pixels. Either way one decode holds at most `IMAGE_DECODE_BYTES`.
    """
    if image.format == "WEBP":
        per_pixel, why = 16.0, " for WebP, whose decoder holds 16 bytes a pixel"
    elif image.format in ("JPEG", "MPO") and image.info.get("progressive") and getattr(image, "layer", None):
        scale = max(h for _, h, _, _ in image.layer) * max(v for _, _, v, _ in image.layer)
        per_pixel = 4.0 + 2.0 * sum(h * v for _, h, v, _ in image.layer) / scale
        why = f" for a progressive JPEG sampled like this one, whose decoder holds {per_pixel:g} bytes a pixel"
    else:
        return MAX_IMAGE_PIXELS, ""
    return min(MAX_IMAGE_PIXELS, int(IMAGE_DECODE_BYTES // per_pixel)), why


def open_image(path: str | os.PathLike | bytes) -> Image.Image:
    """Open an image file at its first frame: the header is read, no pixel is decoded.

    Raises:
        ImageTooLargeError: the image has more pixels than `pixel_limit` allows.
        PIL.UnidentifiedImageError, OSError: the file is not an image Pillow reads.
    """
    if isinstance(path, bytes):
        path = path.decode("utf-8")
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise ImageTooLargeError(int(found.group(1)) if found else 2 * MAX_IMAGE_PIXELS + 1,
                                 MAX_IMAGE_PIXELS) from exc
    try:
        image.seek(0)
        limit, why = pixel_limit(image)
        if image.width * image.height > limit:
            raise ImageTooLargeError(image.width * image.height, limit, image.size, why)
    except BaseException:
        image.close()
        raise
    return image


def _grey8(image: Image.Image, shift: int | None = None) -> np.ndarray:
    """uint8 (H, W) of a 16- or 32-bit grey image shifted right by `shift`.

    `shift` defaults to 8 for 16-bit modes and, for 32-bit, to what brings the image's maximum to 8 bits.
    """
    pixels = np.asarray(image, dtype=np.uint32)
    if shift is None:
        shift = 8 if image.mode.startswith("I;16") else max(int(pixels.max()).bit_length() - 8, 0)
    return (pixels >> shift).clip(0, 255).astype(np.uint8)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to an RGB uint8 array (H, W, 3).

    EXIF orientation is applied; 16-bit greyscale is scaled to 8 bits (Pillow's own conversion
    would clip it); palette, CMYK, greyscale and alpha modes go through Pillow's RGB conversion,
    which drops alpha the way `tf.io.decode_image(channels=3)` does at serving time.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in _INTEGER_GREY_MODES:
        return np.repeat(_grey8(image)[..., None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def load_rgb(path: str | os.PathLike | bytes) -> np.ndarray:
    """Read an image file and return all its RGB uint8 pixels (H, W, 3); first frame of animations.

    Raises `ImageTooLargeError` for a file over its `pixel_limit`.
    """
    with open_image(path) as image:
        return to_rgb_array(image)


def _reduced_rgb(image: Image.Image, factors: tuple[int, int]) -> Image.Image:
    """`image` (any mode) as RGB, box-averaged by (x, y) `factors`, converted one strip at a time.

    Only the strip being converted exists at full resolution besides Pillow's decoded image.
    """
    width, height = image.size
    fx, fy = factors
    image.load()
    shift = 0
    if image.mode in _INTEGER_GREY_MODES:
        shift = 8 if image.mode.startswith("I;16") else max(int(image.getextrema()[1]).bit_length() - 8, 0)
    rows = fy * max(1, STRIP_PIXELS // (width * fy))
    out = Image.new("RGB", (-(-width // fx), -(-height // fy)))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height)))
        if strip.mode in _INTEGER_GREY_MODES:
            strip = Image.fromarray(_grey8(strip, shift), "L")
        elif strip.mode not in ("RGB", "L"):
            strip = strip.convert("RGB")
        out.paste(strip.reduce((fx, fy)).convert("RGB"), (0, top // fy))
    return out


def load_reduced(path: str | os.PathLike | bytes, size: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """RGB uint8 pixels (H, W, 3) of an image file, decoded no larger than needed for `size`.

    A file with both sides under 2 * `size` is decoded in full (the pixels of `load_rgb`). A larger
    JPEG is decoded with DCT scaling at 1/2, 1/4 or 1/8 of each side, the smallest scale that keeps
    both sides at least `size`; then any side still at 2 * `size` or more is box-averaged in uint8 by
    a whole factor, so each side ends within [size, 2 * size]. EXIF orientation is applied last.

    Args:
        path: the image file.
        size: int, the training side in pixels (> 0).

    Returns:
        (pixels, window): `window` is (top, left, height, width) floats, where the file's full picture
        lies in units of the returned pixels. A reduced side whose length is not a multiple of the
        factor ends in a pixel that stands for part of a box, so the picture is slightly shorter than
        the array; `arrays.resize_bilinear(pixels, size, window)` then samples the positions a resize
        of the full image samples. (0, 0, H, W) when nothing was reduced.

    Raises:
        ImageTooLargeError: the file has more pixels than `pixel_limit` allows.
    """
    with open_image(path) as image:
        height, width = image.height, image.width
        scale = _draft(image, size)
        factors = (max(1, image.width // size), max(1, image.height // size))
        rows, columns = -(-image.height // factors[1]), -(-image.width // factors[0])
        method, reverse_rows, reverse_columns, swap = _ORIENTATION.get(
            image.getexif().get(ExifTags.Base.Orientation, 1), (None, False, False, False))
        if factors == (1, 1):
            pixels = to_rgb_array(image)
        else:
            reduced = _reduced_rgb(image, factors)
            pixels = np.asarray(reduced if method is None else reduced.transpose(method), dtype=np.uint8)
    tall, wide = height / (scale * factors[1]), width / (scale * factors[0])
    top, left = (rows - tall if reverse_rows else 0.0), (columns - wide if reverse_columns else 0.0)
    return pixels, ((left, top, wide, tall) if swap else (top, left, tall, wide))


def _draft(image: Image.Image, size: int) -> int:
    """Set a JPEG to decode with DCT scaling: each side divided by 2, 4 or 8, the most that keeps both
    sides at least `size`. Other formats, and JPEGs with a side under 2 * `size`, are left as they are.

    Returns the int scale the decoder divides each side by (1 when nothing was set).
    """
    if image.format not in ("JPEG", "MPO") or min(image.width // size, image.height // size) < 2:
        return 1
    width = image.width
    drafted = image.draft("RGB", (size, size))
    return round(width / drafted[1][2]) if drafted else 1


def check_image_file(path: Path) -> str | None:
    """Return None when `path` decodes as an image, else a short human reason why not.

    The file is decoded the way training decodes it, at `AUDIT_SIZE` px: every byte of it is read
    (a truncated file fails) but a large JPEG is decoded at 1/8 scale, and a file over its
    `pixel_limit` is refused from its header alone, with its pixel count and the limit in the reason.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot stat file: {exc.strerror or exc}"
    if size == 0:
        return "empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return "cannot read file: permission denied"
    try:
        pixels, _ = load_reduced(path, AUDIT_SIZE)
    except ImageTooLargeError as exc:
        return str(exc)
    except UnidentifiedImageError:
        return "not an image (content is not a known image format)"
    except PermissionError:
        return "cannot read file: permission denied"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot decode image: {exc}"
    if pixels.size == 0:
        return "image has no pixels"
    return None
