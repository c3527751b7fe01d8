"""Peak memory and time of the data stage on large photos: the old decoding path against the new one.

The data stage is what `fit` runs before training: the audit (`scan_folder`) and the decode of every
image into uint8 arrays at the training size (`load_images`, in memory). Each path runs in a fresh
child process that reports its peak RSS (VmHWM of /proc/self/status, else ru_maxrss) and its RSS
after imports. The old path is re-implemented here as the baseline: Pillow's limit at 200 megapixels,
an audit that decodes every file in full (4 threads), and a decode of every file in full converted to
float32 before the bilinear resize, in os.cpu_count() threads. Files are read from the page cache
(they were just written). Linux only for VmHWM.

    python benchmarks/decode_memory.py                    # 2,000 JPEGs of 12 MP (4000 x 3000), 64 px
    python benchmarks/decode_memory.py --images 300       # fewer images
    python benchmarks/decode_memory.py --bomb             # a 20,000 x 20,000 PNG among 320 images of 0.3 MP
    python benchmarks/decode_memory.py --smoke            # 20 small images and a small bomb: seconds
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

#: Peak RSS the bomb case must stay under, in MB.
BOMB_TARGET_MB = 1500
#: Side of the decompression bomb PNG (a constant grey image: a few hundred KB on disk).
BOMB_SIDE = 20_000
#: Pillow's pixel limit before this change.
OLD_MAX_IMAGE_PIXELS = 200_000_000


def photo_like(width: int, height: int, seed: int, noise_tile: Image.Image) -> Image.Image:
    """An RGB image that compresses like a photo: smooth colour gradients, texture, sensor-like noise."""
    rng = np.random.default_rng(seed)
    small = (max(width // 4, 8), max(height // 4, 8))
    coarse = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)).resize(small, Image.Resampling.BICUBIC)
    texture = Image.fromarray(rng.integers(0, 256, (small[1] // 8 + 2, small[0] // 8 + 2, 3), dtype=np.uint8))
    image = Image.blend(coarse, texture.resize(small, Image.Resampling.BICUBIC), 0.25)
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    noise = Image.new("RGB", (width, height))
    dx, dy = (int(v) for v in rng.integers(0, noise_tile.width, 2))
    for top in range(-dy, height, noise_tile.height):
        for left in range(-dx, width, noise_tile.width):
            noise.paste(noise_tile, (left, top))
    return ImageChops.add(image, noise, 1.0, -128)


def write_dataset(root: Path, images: int, megapixels: float, classes: int = 2) -> tuple[int, int]:
    """`images` JPEGs (quality 90) of `megapixels` at 4:3 in `classes` class folders; returns (width, height)."""
    width = max(8, round(math.sqrt(megapixels * 1e6 * 4 / 3)))
    height = max(8, round(width * 3 / 4))
    rng = np.random.default_rng(0)
    tile = Image.fromarray(np.clip(rng.normal(128, 6, (512, 512, 3)), 0, 255).astype(np.uint8))
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        photo_like(width, height, i, tile).save(root / f"class_{i % classes}" / f"photo_{i:05d}.jpg", quality=90)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(one, range(images)))
    return width, height


def write_bomb(path: Path, side: int = BOMB_SIDE) -> int:
    """A `side` x `side` greyscale PNG of one constant value (Pillow-written); returns its bytes."""
    Image.new("L", (side, side), 128).save(path)
    return path.stat().st_size


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _old_check_image_file(path: Path) -> str | None:
    """The audit before this change: every file decoded in full, Pillow's limit at 200 MP."""
    from PIL import UnidentifiedImageError

    from resnet_automl.data.images import to_rgb_array

    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot stat file: {exc.strerror or exc}"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            image.seek(0)
            image.load()
            to_rgb_array(image)
    except UnidentifiedImageError:
        return "not an image (content is not a known image format)"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot decode image: {exc}"
    return None


def _old_decode_resized(path: str, size: int) -> np.ndarray:
    """The decode before this change: all pixels, converted to float32, then resized."""
    from resnet_automl.data.arrays import resize_bilinear
    from resnet_automl.data.images import to_rgb_array

    with Image.open(path) as image:
        image.seek(0)
        pixels = to_rgb_array(image)
    return np.clip(np.rint(resize_bilinear(pixels, size)), 0, 255).astype(np.uint8)


def _old_load_images(items: list, size: int) -> np.ndarray:
    out = np.empty((len(items), size, size, 3), np.uint8)
    paths = [path for path, _ in items]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for start in range(0, len(paths), 256):
            chunk = paths[start:start + 256]
            for offset, pixels in enumerate(pool.map(lambda p: _old_decode_resized(p, size), chunk)):
                out[start + offset] = pixels
    return out


def child(path_kind: str, data: Path, size: int) -> dict:
    """The data stage in this process, the `path_kind` ("old" or "new") way; returns its numbers."""
    from resnet_automl.data import scan as scan_module
    from resnet_automl.data.arrays import load_images
    from resnet_automl.data.images import decode_threads

    import_mb = _peak_rss_mb()
    if path_kind == "old":
        Image.MAX_IMAGE_PIXELS = OLD_MAX_IMAGE_PIXELS
        scan_module.check_image_file = _old_check_image_file
        scan_module.decode_threads = lambda requested=None: requested or os.cpu_count() or 1
        threads = os.cpu_count() or 1
    else:
        threads = decode_threads()
    start = time.perf_counter()
    scan = scan_module.scan_folder(data)
    audited = time.perf_counter()
    items = scan.images["all"]
    arrays = _old_load_images(items, size) if path_kind == "old" else load_images(items, size)
    done = time.perf_counter()
    return {"path": path_kind, "audit_s": audited - start, "decode_s": done - audited, "total_s": done - start,
            "peak_rss_mb": _peak_rss_mb(), "import_rss_mb": import_mb, "images": int(arrays.shape[0]),
            "decode_threads": threads, "skipped": [{"name": Path(s["path"]).name, "reason": s["reason"]}
                                                    for s in scan.skipped]}


def run_child(path_kind: str, data: Path, size: int) -> dict:
    """`child` in a fresh Python process (its peak RSS is its own)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", path_kind, "--data", str(data),
               "--size", str(size)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {path_kind} child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(result: dict) -> str:
    return (f"{result['path']:<4} {result['audit_s']:>8.1f} {result['decode_s']:>9.1f} {result['total_s']:>8.1f} "
            f"{result['peak_rss_mb']:>12,.0f} {result['import_rss_mb']:>14,.0f} {result['decode_threads']:>8} "
            f"{result['images']:>7} {len(result['skipped']):>8}")


HEADER = "path  audit_s  decode_s  total_s  peak_rss_mb  import_rss_mb  threads  images  skipped"


def compare(data: Path, size: int) -> None:
    """Old and new path on the same folder: a table and the old/new ratios."""
    old, new = run_child("old", data, size), run_child("new", data, size)
    print(HEADER)
    print(_row(old))
    print(_row(new))
    print(f"old/new: {old['total_s'] / new['total_s']:.1f}x the time ({old['audit_s'] / new['audit_s']:.1f}x audit, "
          f"{old['decode_s'] / new['decode_s']:.1f}x decode), {old['peak_rss_mb'] / new['peak_rss_mb']:.1f}x the "
          f"peak RSS ({old['peak_rss_mb'] - old['import_rss_mb']:,.0f} MB vs "
          f"{new['peak_rss_mb'] - new['import_rss_mb']:,.0f} MB above the imports)", flush=True)


def bomb_case(data: Path, size: int, bomb_side: int) -> bool:
    """The new path with a bomb PNG in the first class: True when it is skipped and the peak is on target."""
    bomb = data / "class_0" / "bomb.png"
    disk = write_bomb(bomb, bomb_side)
    print(f"bomb: {bomb_side:,} x {bomb_side:,} PNG ({bomb_side * bomb_side / 1e6:,.0f} MP, {disk / 1e3:,.0f} KB "
          f"on disk) in {data}", flush=True)
    result = run_child("new", data, size)
    print(HEADER)
    print(_row(result))
    reasons = [s["reason"] for s in result["skipped"] if s["name"] == bomb.name]
    print(f"bomb.png skipped: {reasons[0] if reasons else 'NO, it was accepted'}")
    on_target = result["peak_rss_mb"] < BOMB_TARGET_MB
    print(f"peak RSS {result['peak_rss_mb']:,.0f} MB: {'under' if on_target else 'OVER'} the "
          f"{BOMB_TARGET_MB:,} MB target", flush=True)
    return bool(reasons) and on_target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=None,
                        help="images to generate (default 2,000; 320 with --bomb; 20 with --smoke)")
    parser.add_argument("--megapixels", type=float, default=None,
                        help="megapixels of each image, 4:3 (default 12; 0.3 with --bomb; 0.25 with --smoke)")
    parser.add_argument("--size", type=int, default=64, help="training side in px (default 64)")
    parser.add_argument("--bomb", action="store_true",
                        help=f"only the new path, with a {BOMB_SIDE:,} x {BOMB_SIDE:,} PNG among the images")
    parser.add_argument("--smoke", action="store_true", help="20 small images, both paths, then a 9,000 px bomb")
    parser.add_argument("--workdir", default=None, help="folder for the images (default: a temporary one, removed)")
    parser.add_argument("--child", choices=("old", "new"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.data), args.size)))
        return 0
    images = args.images or (20 if args.smoke else 320 if args.bomb else 2000)
    megapixels = args.megapixels or (0.25 if args.smoke else 0.3 if args.bomb else 12.0)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="decode-memory-"))
    data = work / "data"
    try:
        start = time.perf_counter()
        width, height = write_dataset(data, images, megapixels)
        disk = sum(p.stat().st_size for p in data.rglob("*.jpg"))
        print(f"data: {images:,} JPEGs of {width * height / 1e6:.1f} MP ({width} x {height}), {disk / 1e6:,.0f} MB "
              f"on disk, written in {time.perf_counter() - start:.0f} s; training size {args.size} px; "
              f"{os.cpu_count()} CPUs", flush=True)
        ok = True
        if not args.bomb:
            compare(data, args.size)
        if args.bomb or args.smoke:
            ok = bomb_case(data, args.size, 9_000 if args.smoke else BOMB_SIDE)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
