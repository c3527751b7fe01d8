"""The data layer: find, audit and split the images, decode them once into uint8 arrays.

Owns: `scan` (class folders and audit), `manifest` (CSV / JSON Lines files of paths and labels),
`split` (stratified, seeded split and its file),
`images` (decoding one file), `arrays` (decoded arrays cached and memory-mapped), `batches`
(batches by index for any Keras backend), `tfds_source` ("tfds:NAME" into a split tree).
`prepare_data` accepts a class-folder tree, a pre-split `train/ val/ test/` tree, a manifest or "tfds:NAME",
audits once and stores the split in the run directory so a resumed run trains on the same files.
May import: `runtime`, `config`.
Entry points: `prepare_data`, `load_images`, `ArrayBatches`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from resnet_automl.data import fingerprint
from resnet_automl.data.images import IMAGE_EXTENSIONS, load_rgb
from resnet_automl.data.manifest import ManifestColumns, is_manifest, scan_manifest
from resnet_automl.data.scan import Scan, scan_folder
from resnet_automl.data.split import DatasetSplits, split_scan
from resnet_automl.data.tfds_source import is_tfds_source, materialize_tfds
from resnet_automl.errors import DataError
from resnet_automl.runtime.run_folder import RunLayout

logger = logging.getLogger(__name__)

__all__ = ["DatasetSplits", "IMAGE_EXTENSIONS", "ManifestColumns", "Scan", "load_rgb",
           "prepare_data", "scan_dataset", "scan_folder", "split_scan"]


def scan_dataset(source: str | os.PathLike, columns: ManifestColumns | None = None) -> Scan:
    """`scan_manifest` for a .csv/.jsonl file, else `scan_folder`; `columns` (a `ManifestColumns`) apply
    to a manifest. Defaults to None: columns detected from the header. Its `task` "multilabel" needs
    a manifest (a class folder gives each image one label)."""
    columns = columns or ManifestColumns()
    if is_manifest(source):
        return scan_manifest(source, columns)
    if columns.task == "multilabel":
        raise DataError(f"--task multilabel needs a CSV or JSONL manifest that lists each image's labels, but "
                        f"{str(source)!r} is a folder (one label per image). Write a manifest (path,labels with "
                        "--label-delimiter, or a JSON list per line), or drop --task multilabel.")
    return scan_folder(source)


def prepare_data(source: str | os.PathLike, run_dir: str | os.PathLike | None = None, *,
                 seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15,
                 tfds_options: dict | None = None, columns: ManifestColumns | None = None,
                 keep_split: bool = False) -> DatasetSplits:
    """Audit and split a dataset, reusing the split saved in `run_dir` when there is one.

    Args:
        source: a folder path, a .csv/.jsonl manifest, or "tfds:NAME[/CONFIG]".
        run_dir: run directory; the split goes to `run_dir/data/split.json`, and a TFDS dataset is
            written out under `run_dir/data/tfds/`. None keeps nothing on disk (TFDS then needs it).
        seed: int, split seed. Defaults to 0.
        val_fraction, test_fraction: floats, shares of a class-folder tree held out. Default 0.15.
        tfds_options: dict or None, keyword arguments of `materialize_tfds` for a TFDS source:
            `data_dir` (TFDS data folder; TFDS's own default) and `max_per_split` (a cap on images
            per split; all). Defaults to None.
        columns: `ManifestColumns` of a manifest source, or None (default): detected from its header.
        keep_split: bool, go on with the saved split when the data changed since it was made
            (files that are gone still stop the run). Defaults to False: changed data stops with
            `DataError` naming what changed.
    """
    layout = RunLayout(run_dir) if run_dir is not None else None
    split_file = layout.split_file if layout is not None else None
    if split_file is not None and split_file.exists():
        return _saved_split(source, split_file, keep_split)
    if is_tfds_source(source):
        if run_dir is None:
            raise ValueError("A TFDS source needs a run_dir to write its images into.")
        folder = materialize_tfds(source, layout.tfds_dir, **(tfds_options or {}))
    else:
        folder = source
    splits = split_scan(scan_dataset(folder, columns), seed=seed, val_fraction=val_fraction,
                        test_fraction=test_fraction)
    if is_tfds_source(source):
        splits.audit["source"] = str(source)
    else:
        splits.fingerprint = fingerprint.take(source, splits.paths())
    if split_file is not None:
        splits.save(split_file)
    return splits


def _saved_split(source, split_file: Path, keep_split: bool) -> DatasetSplits:
    """The run's saved split; `DataError` naming what changed when the data differs from what it was
    made from (unless `keep_split`), or when files it lists are gone."""
    splits = DatasetSplits.load(split_file, check_files=False)
    if splits.fingerprint is not None and not is_tfds_source(source):
        changes = fingerprint.compare(splits.fingerprint, fingerprint.take(source, splits.paths()))
        what = changes.describe()
        if changes and not keep_split:
            raise DataError(
                f"The data in {str(source)!r} changed since this run split it: {what}. The run "
                f"would go on with the old split in silence, so it stops. Rerun with --overwrite to start again "
                "on the data as it is now (exported model versions are kept), pass another --out to keep this "
                "run as it is, or pass --keep-split to go on with the saved split.")
        if changes:
            logger.warning(f"[data] the data changed since the split was made ({what}); "
                           "--keep-split: going on with the saved split")
    splits.check_files(split_file)
    return splits
