"""Read a TensorFlow Datasets dataset (`tfds:NAME[/CONFIG]`) into a pre-split image tree.

The tree `DIR/data/tfds/<name>/<split>/<label>/<i>.png` is written once, streaming (one image in
memory at a time), and then read like any user folder, so audit, split and report are the same.
Offline, `tfds.load` retries for minutes before failing; pre-download with
`tfds build NAME` or pass `data_dir` where the prepared dataset already is.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

from resnet_automl.errors import DataError

#: TFDS split names mapped onto ours.
TFDS_SPLITS = {"train": "train", "validation": "val", "test": "test"}
PREFIX = "tfds:"


def is_tfds_source(source) -> bool:
    """True for a string like "tfds:mnist"."""
    return isinstance(source, str) and source.startswith(PREFIX)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "class"


def _prepared_builder(name: str, data_dir: str | None):
    """The TFDS builder of `name`, downloaded and prepared (a `DataError` naming the offline route)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    except Exception as exc:  # tfds raises many types: name the dataset and the offline route
        raise DataError(f"TensorFlow Datasets could not prepare {name!r}: {exc}. Check the name "
                        "(`tfds.list_builders()`); offline, prepare it first on a connected machine "
                        "and copy ~/tensorflow_datasets, or pass a folder of images instead.") from exc
    return builder


def _image_and_label_keys(info, name: str) -> tuple[str, str]:
    """The first image feature and the first class-label feature of a TFDS dataset."""
    import tensorflow_datasets as tfds

    image_keys = [k for k, f in info.features.items() if isinstance(f, tfds.features.Image)]
    label_keys = [k for k, f in info.features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not image_keys or not label_keys:
        raise DataError(f"TFDS dataset {name!r} has no image + class label features "
                        f"(features: {list(info.features)}); it cannot train an image classifier.")
    return image_keys[0], label_keys[0]


def _write_split(dataset, folder: Path, keys: tuple[str, str], label_names: list) -> None:
    """Write the examples of one TFDS split as `folder/<label>/<i>.png`."""
    import tensorflow_datasets as tfds
    from PIL import Image

    image_key, label_key = keys
    for i, example in enumerate(tfds.as_numpy(dataset)):
        label_folder = folder / _safe(label_names[int(example[label_key])])
        label_folder.mkdir(parents=True, exist_ok=True)
        pixels = example[image_key]
        if pixels.ndim == 3 and pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        (label_folder / f"{i:07d}.png").write_bytes(buffer.getvalue())


def materialize_tfds(source: str, target: str | os.PathLike, *, data_dir: str | None = None,
                     max_per_split: int | None = None) -> Path:
    """Write the images of `source` ("tfds:NAME[/CONFIG]") under `target` and return the tree root.

    Args:
        source: "tfds:" followed by a TFDS dataset name, optionally with "/CONFIG".
        target: folder that receives `<split>/<label>/<i>.png` (reused when complete).
        data_dir: TFDS data folder, or None for TFDS's default (~/tensorflow_datasets).
        max_per_split: int or None, cap on images written per split (None: all).
    """
    name = source[len(PREFIX):].strip()
    if not name:
        raise DataError(f"{source!r} names no dataset; write e.g. tfds:mnist or tfds:cifar10.")
    root = Path(target) / _safe(name)
    done = root / ".complete"
    if done.exists():
        return root
    builder = _prepared_builder(name, data_dir)
    info = builder.info
    keys = _image_and_label_keys(info, name)
    label_names = info.features[keys[1]].names
    written = []
    for split in TFDS_SPLITS:
        if info.splits and split not in info.splits:
            continue
        try:
            dataset = builder.as_dataset(split=split)
        except (ValueError, KeyError):  # the dataset has no such split
            continue
        written.append(split)
        _write_split(dataset.take(max_per_split) if max_per_split else dataset, root / TFDS_SPLITS[split], keys,
                     label_names)
    if "train" not in written:
        raise DataError(f"TFDS dataset {name!r} has no 'train' split (splits: {list(info.splits)}).")
    for split in written:  # every class folder in every split, so the class sets agree
        for label in label_names:
            (root / TFDS_SPLITS[split] / _safe(label)).mkdir(parents=True, exist_ok=True)
    done.write_text(source)
    return root
