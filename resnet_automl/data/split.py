"""Stratified, seeded train/val/test split, its audit summary, and its file in the run directory.

Single-label data is stratified by class (scikit-learn's `train_test_split`); multi-label data by
iterative stratification (Sechidis et al., 2011: `iterstrat`'s `MultilabelStratifiedShuffleSplit`),
which keeps each label's share of images close to equal across the splits.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from resnet_automl.config.task import Task
from resnet_automl.data.scan import Scan
from resnet_automl.errors import DataError, RunStateError
from resnet_automl.runtime.files import read_json_object, write_json_atomic

SPLITS = ("train", "val", "test")
SPLIT_FILE_VERSION = 1
#: Largest per-label positive weight of a multi-label loss on imbalanced data (negatives / positives, capped).
MAX_POSITIVE_WEIGHT = 50.0


def multi_hot(labels: list, num_classes: int) -> np.ndarray:
    """float32 [N, num_classes]: 1 where row i's label indices (an iterable of int per row) name a class."""
    out = np.zeros((len(labels), num_classes), np.float32)
    for row, indices in enumerate(labels):
        out[row, list(indices)] = 1.0
    return out


@dataclass
class DatasetSplits:
    """The dataset as training sees it.

    Attributes:
        root: str, the dataset folder.
        class_names: list of str; a label is an index into it.
        train, val, test: lists of (path, label index).
        audit: dict, the audit record (counts, skipped files, duplicates, imbalance, class weights)
            that goes into run.json and the report.
        seed: int, the split seed.
        task: `Task`, MULTICLASS (a label is an int) or MULTILABEL (a label is a tuple of int, any
            number of classes); written to the split file as its name. Default MULTICLASS.
        fingerprint: dict or None, what the split was made from (`data.fingerprint.take`), so a
            rerun notices changed data. Default None (a TFDS source, or a split of an older version).
    """

    root: str
    class_names: list
    train: list
    val: list
    test: list
    audit: dict = field(default_factory=dict)
    seed: int = 0
    task: Task = Task.MULTICLASS
    fingerprint: dict | None = None

    def __post_init__(self):
        self.task = Task(self.task)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label_array(self, name: str) -> np.ndarray:
        """The labels of split `name` as training reads them: int32 [N] class indices, or for a
        multi-label dataset float32 [N, classes] multi-hot rows."""
        labels = [label for _, label in self.split(name)]
        if self.task.multilabel:
            return multi_hot(labels, self.num_classes)
        return np.array(labels, dtype=np.int32)

    def positive_weights(self) -> list | None:
        """Per-class weights of the positive term of a multi-label loss (list of float), or None
        (single-label data, or balanced labels: every weight 1)."""
        weights = self.audit.get("positive_weights")
        return None if not weights or not self.audit.get("imbalanced") else [float(w) for w in weights]

    def split(self, name: str) -> list:
        """The (path, label) list of split `name` ("train", "val" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; expected one of {SPLITS}.")
        return getattr(self, name)

    def class_weights(self) -> dict | None:
        """`{label index: weight}` from the audit, for `Model.fit(class_weight=...)`; None for a
        multi-label dataset (its weights are `positive_weights`)."""
        if self.task.multilabel:
            return None
        return {int(k): float(v) for k, v in self.audit["class_weights"].items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the split (file lists and audit) as JSON, atomically."""
        write_json_atomic(path, {"version": SPLIT_FILE_VERSION, **asdict(self)}, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike, check_files: bool = True) -> "DatasetSplits":
        """Read a split written by `save`, validated: `RunStateError` naming the file when it is
        damaged (truncated, empty, not a split); with `check_files` (default True), `DataError` when
        files it lists are gone."""
        path = Path(path)
        fix = ("Rerun with --overwrite to split the data again (exported model versions are kept), or pass "
               "another --out.")
        data = read_json_object(path, what="the saved split", fix=fix)
        try:
            data.pop("version", None)
            multilabel = Task(data.get("task", Task.MULTICLASS)).multilabel
            for split in SPLITS:
                data[split] = [(str(p), tuple(int(i) for i in label) if multilabel else int(label))
                               for p, label in data[split]]
            splits = cls(**data)
            if not isinstance(splits.class_names, list) or not isinstance(splits.audit, dict):
                raise TypeError("class_names or audit of the wrong type")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RunStateError(f"The saved split {str(path)!r} is damaged: {type(exc).__name__}: {exc}. "
                                f"{fix}") from None
        if check_files:
            splits.check_files(path)
        return splits

    def paths(self) -> list:
        """The files of train, val and test, in that order (str)."""
        return [p for split in SPLITS for p, _ in self.split(split)]

    def check_files(self, path) -> None:
        """`DataError` when files of this split (saved at `path`) are gone."""
        missing = [p for p in self.paths() if not os.path.exists(p)]
        if missing:
            raise DataError(
                f"The dataset changed since this run started: {len(missing)} file(s) of the saved split "
                f"{str(path)!r} are gone (first: {missing[0]!r}). Restore them, or start again with "
                "--overwrite (or a new --out folder).")


def _stratified(items: list, size: float, seed: int, what: str, num_classes: int):
    """Split `items` [(path, label)] into (rest, held) with `size` of them held out; a tuple label
    (multi-label) is stratified iteratively (`iterstrat`), an int one by class."""
    labels = [label for _, label in items]
    multilabel = bool(items) and isinstance(labels[0], tuple)
    held = max(1 if multilabel else num_classes, int(round(size * len(items))))
    if held >= len(items):
        raise DataError(f"Too few images to split off a {what} set ({len(items)} images, "
                        f"{num_classes} classes). Add images, or pass a pre-split tree.")
    if multilabel:
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=held, random_state=seed)
        rest_index, held_index = next(splitter.split(np.zeros(len(items)), multi_hot(labels, num_classes)))
        return sorted(items[i] for i in rest_index), sorted(items[i] for i in held_index)
    from sklearn.model_selection import train_test_split  # scikit-learn loads when a split is made

    rest, out = train_test_split(items, test_size=held, random_state=seed, stratify=labels)
    return sorted(rest), sorted(out)


def _has(label, index: int) -> bool:
    """True when `label` (an int, or a tuple of int for multi-label data) includes class `index`."""
    return index in label if isinstance(label, tuple) else label == index


def _index_labels(scan: Scan) -> dict:
    """split -> sorted [(path, label)] with class names turned into indices (tuples of them when multi-label)."""
    index = {name: i for i, name in enumerate(scan.class_names)}
    if scan.multilabel:
        return {split: sorted((p, tuple(sorted(index[n] for n in names))) for p, names in items)
                for split, items in scan.images.items()}
    return {split: sorted((p, index[name]) for p, name in items) for split, items in scan.images.items()}


def split_scan(scan: Scan, *, seed: int = 0, val_fraction: float = 0.15,
               test_fraction: float = 0.15, min_images_per_class: int = 3) -> DatasetSplits:
    """Turn a `Scan` into train/val/test lists, stratified by class and reproducible by `seed`.

    Args:
        scan: the result of `scan_folder`.
        seed: int, random seed of the split. Defaults to 0.
        val_fraction: float in (0, 0.5), share of images for validation (tuning). Defaults to 0.15.
        test_fraction: float in (0, 0.5), share held out for the final report. Defaults to 0.15.
        min_images_per_class: int, fewest readable images a class needs to be split. Defaults to 3.
    """
    index = {name: i for i, name in enumerate(scan.class_names)}
    labelled = _index_labels(scan)
    pool_name = "train" if scan.presplit else "all"
    for name, i in index.items():
        count = sum(1 for _, label in labelled[pool_name] if _has(label, i))
        needed = min_images_per_class if not scan.presplit else 1 + ("val" not in labelled) + ("test" not in labelled)
        if count < needed and scan.is_manifest:
            raise DataError(
                f"Label {name!r} has {count} readable image(s) in the manifest {scan.source!r}"
                f"{' (train split)' if scan.presplit else ''}; at least {needed} are needed to split it into "
                "train, val and test. Add rows for that label or remove its rows.")
        if count < needed:
            folder = str(scan.root / ('train' if scan.presplit else ''))
            raise DataError(
                f"Class {name!r} has {count} readable image(s) in {folder!r}"
                f"{'/' + name}; at least {needed} are needed to split it into train, val and test. "
                "Add images to that class or remove its folder.")
    num_classes = len(index)
    if scan.presplit:
        train = labelled["train"]
        if "test" in labelled:
            test = labelled["test"]
        else:
            train, test = _stratified(train, test_fraction, seed, "test", num_classes)
        if "val" in labelled:
            val = labelled["val"]
        else:
            train, val = _stratified(train, val_fraction, seed + 1, "validation", num_classes)
    else:
        rest, test = _stratified(labelled["all"], test_fraction, seed, "test", num_classes)
        train, val = _stratified(rest, val_fraction / (1.0 - test_fraction), seed + 1,
                                 "validation", num_classes)
    if (not val or not test) and scan.is_manifest:
        raise DataError(f"The val or test rows of {scan.source!r} hold no readable image; add some, or leave "
                        "the split empty on every row to have it drawn from the train rows.")
    if not val or not test:
        raise DataError(f"The val/ or test/ folder of {str(scan.root)!r} has no readable image; "
                        "add images there, or delete the empty folder to have it split off train/.")
    parts = (("train", train), ("val", val), ("test", test))
    counts = {split: {name: sum(1 for _, label in items if _has(label, i)) for name, i in index.items()}
              for split, items in parts}
    train_counts = [c for c in counts["train"].values() if c > 0]
    ratio = max(train_counts) / min(train_counts)
    audit = {
        "source": scan.source,
        "layout": scan.layout,
        "counts": counts,
        "num_images": {split: len(items) for split, items in parts},
        "skipped": scan.skipped,
        "num_skipped": len(scan.skipped),
        "duplicates": scan.duplicates,
        "cross_split_duplicates": scan.cross_split_duplicates,
        "imbalance_ratio": round(float(ratio), 3),
        "imbalanced": bool(ratio >= 1.5),
        **(_label_weights(train, num_classes) if scan.multilabel else _class_weights(train)),
    }
    return DatasetSplits(root=str(scan.root), class_names=list(scan.class_names), train=train,
                         val=val, test=test, audit=audit, seed=seed,
                         task=Task.of(scan.multilabel))


def _class_weights(train: list) -> dict:
    """The audit's "class_weights" of single-label `train` items: scikit-learn's "balanced" weights."""
    train_labels = np.array([label for _, label in train])
    present = np.unique(train_labels)
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=present, y=train_labels)
    return {"class_weights": {str(int(c)): round(float(w), 6) for c, w in zip(present, weights, strict=True)}}


def _label_weights(train: list, num_classes: int) -> dict:
    """The audit's multi-label entries of `train` items: "positive_weights" (negatives / positives per
    class, at most `MAX_POSITIVE_WEIGHT`), "label_cardinality" (mean labels per image) and
    "label_combinations" (distinct label sets)."""
    hot = multi_hot([label for _, label in train], num_classes)
    positives = hot.sum(axis=0)
    weights = np.minimum((len(hot) - positives) / np.maximum(positives, 1.0), MAX_POSITIVE_WEIGHT)
    return {"multilabel": True, "positive_weights": [round(float(w), 6) for w in weights],
            "label_cardinality": round(float(hot.sum(axis=1).mean()), 4),
            "label_combinations": len({label for _, label in train})}
