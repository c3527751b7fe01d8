"""Find the images of a dataset folder and audit them before any training.

Two layouts are read: a folder of class subfolders, or a pre-split tree
`train/ val|validation/ [test/]` whose splits hold the same class subfolders.
"""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from resnet_automl.data.images import IMAGE_EXTENSIONS, check_image_file, decode_threads
from resnet_automl.errors import DataError

#: Folder names recognised as splits of a pre-split tree, mapped to our split names.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
#: Endings of a manifest file (`data.manifest`): a dataset given as a table rather than a folder.
MANIFEST_SUFFIXES = (".csv", ".jsonl")


@dataclass
class Scan:
    """What a scan found.

    Attributes:
        root: absolute dataset folder.
        presplit: True for a `train/ val/ test/` tree.
        class_names: sorted class folder names.
        images: split name ("all" for a plain class-folder tree) -> list of (path, class name).
        skipped: list of {"path", "reason"} for every file or folder left out.
        duplicates: groups (lists of paths) of files with identical content, kept in training only
            once per class; groups spanning splits are also listed in `cross_split_duplicates`.
        cross_split_duplicates: duplicate groups whose files sit in different splits (leakage).
        source: str, what the user passed (the folder, or a manifest file). Default: `root`.
        layout: str, how the labels were given: "class folders", "train/val/test folders" or
            "CSV manifest" / "JSONL manifest". Default: from `presplit`.
        multilabel: bool, each image has a tuple of class names (any number) instead of one name.
            Default False.
    """

    root: Path
    presplit: bool
    class_names: list
    images: dict
    skipped: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)
    cross_split_duplicates: list = field(default_factory=list)
    source: str = ""
    layout: str = ""
    multilabel: bool = False

    def __post_init__(self):
        self.source = self.source or str(self.root)
        self.layout = self.layout or ("train/val/test folders" if self.presplit else "class folders")

    @property
    def is_manifest(self) -> bool:
        return self.layout.endswith("manifest")


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _list_class_files(class_dir: Path, skipped: list) -> list:
    """All candidate files under one class folder, nested folders included, links not looped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
        for name in sorted(dirnames):
            if _is_hidden(name):
                skipped.append({"path": str(Path(dirpath, name)), "reason": "hidden folder"})
            elif Path(dirpath, name).is_symlink():
                skipped.append({"path": str(Path(dirpath, name)),
                                "reason": "symlinked folder (not followed, to avoid loops)"})
        dirnames[:] = sorted(d for d in dirnames
                             if not _is_hidden(d) and not Path(dirpath, d).is_symlink())
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if _is_hidden(name):
                skipped.append({"path": str(path), "reason": "hidden file"})
            elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append({"path": str(path), "reason": (
                    f"not an image file extension ({path.suffix or 'none'}); "
                    f"accepted: {', '.join(sorted(IMAGE_EXTENSIONS))}")})
            elif path.is_symlink() and not path.exists():
                skipped.append({"path": str(path), "reason": "broken symbolic link"})
            else:
                found.append(path)
    return found


def _class_dirs(folder: Path, skipped: list, what: str) -> dict:
    classes = {}
    for entry in sorted(folder.iterdir()):
        if _is_hidden(entry.name):
            skipped.append({"path": str(entry), "reason": f"hidden entry in {what}"})
        elif entry.is_dir():
            classes[entry.name] = entry
        else:
            skipped.append({"path": str(entry), "reason": f"stray file in {what} (not in a class folder)"})
    return classes


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_dataset_path(root) -> Path:
    """Return `root` resolved; raise `DataError` when it is missing, or neither a folder nor a manifest file."""
    root = Path(root).expanduser()
    if root.suffix.lower() in MANIFEST_SUFFIXES and root.is_file():
        return root.resolve()
    if root.suffix.lower() in MANIFEST_SUFFIXES and not root.exists():
        raise DataError(f"The manifest {str(root)!r} does not exist. Pass a .csv or .jsonl file with one row per "
                        "image (path,label), or a folder of class subfolders.")
    if not root.exists():
        raise DataError(f"The dataset folder {str(root)!r} does not exist. "
                        "Pass the path of a folder that holds one subfolder per class.")
    if not root.is_dir():
        raise DataError(f"The dataset path {str(root)!r} is a file, not a folder. Pass the folder "
                        "that holds one subfolder per class (or train/ val/ test/ subfolders), or a .csv or "
                        ".jsonl manifest with one row per image (path,label).")
    return root.resolve()


def _split_groups(root: Path, top: dict, skipped: list) -> tuple[bool, dict]:
    """(presplit, split name -> class name -> folder) of the dataset folder's entries `top`."""
    presplit = "train" in top and any(name in top for name in ("val", "validation", "test"))
    if not presplit:
        return False, {"all": top}
    groups = {}
    for name, folder in top.items():
        if name not in SPLIT_FOLDERS:
            raise DataError(f"{str(root)!r} looks like a pre-split tree (it has train/) but also holds "
                            f"{name!r}. A pre-split tree holds only train/, val/ (or validation/) and "
                            "test/; move the other folder out.")
        if SPLIT_FOLDERS[name] in groups:
            raise DataError(f"{str(root)!r} holds both val/ and validation/; keep one of them.")
        groups[SPLIT_FOLDERS[name]] = _class_dirs(folder, skipped, f"{name}/")
    reference = set(groups["train"])
    for split, classes in groups.items():
        if set(classes) != reference:
            raise DataError(
                f"The splits of {str(root)!r} have different class folders: train/ has "
                f"{sorted(reference)}, {split}/ has {sorted(classes)}. Give every split the same "
                "class subfolders (an empty one is allowed in val/ or test/).")
    return True, groups


def _check_class_count(root: Path, class_names: list) -> None:
    if not class_names:
        raise DataError(f"No class folders found in {str(root)!r}. Put the images of each class in "
                        "a subfolder named after the class, e.g. DATA/cats/1.jpg, DATA/dogs/2.jpg.")
    if len(class_names) == 1:
        raise DataError(f"Only one class folder ({class_names[0]!r}) found in {str(root)!r}; a "
                        "classifier needs at least two. Add a subfolder per class.")


def _audit_files(candidates: list, skipped: list, workers: int) -> tuple[list, list]:
    """Decode-check and hash `candidates` (split, class, path); returns (good candidates, their sha256)."""
    with ThreadPoolExecutor(decode_threads(max(1, workers))) as pool:
        problems = list(pool.map(lambda item: check_image_file(item[2]), candidates))
        good = [item for item, problem in zip(candidates, problems, strict=True) if problem is None]
        hashes = list(pool.map(lambda item: file_sha256(item[2]), good))
    for (_split, _name, path), problem in zip(candidates, problems, strict=True):
        if problem is not None:
            skipped.append({"path": str(path), "reason": problem})
    return good, hashes


def _add_unique(scan: Scan, good: list, hashes: list) -> None:
    """Put each file into `scan.images` once per (split, class) content; record duplicate groups."""
    by_hash = defaultdict(list)
    for (split, name, path), digest in zip(good, hashes, strict=True):
        seen = [item for item in by_hash[digest] if item[1] == name and item[0] == split]
        by_hash[digest].append((split, name, path))
        if seen:
            scan.skipped.append({"path": str(path), "reason": f"exact duplicate of {seen[0][2]}"})
            continue
        scan.images[split].append((str(path), name))
    for items in by_hash.values():
        if len(items) > 1:
            scan.duplicates.append([str(p) for _, _, p in items])
            if len({s for s, _, _ in items}) > 1:
                scan.cross_split_duplicates.append([f"{s}: {p}" for s, _, p in items])


def has_label(label, name: str) -> bool:
    """True when an image's `label` (a class name, or a tuple of them for multi-label data) includes `name`."""
    return name in label if isinstance(label, tuple) else label == name


def audit_candidates(scan: Scan, candidates: list, workers: int = 4) -> None:
    """Decode-check and hash `candidates` ((split, class name, path) triples) into `scan`: readable
    files go to `scan.images` once per (split, class) content, the rest to `scan.skipped` with the
    reason. Raise `DataError` when a class is left without a readable image."""
    good, hashes = _audit_files(candidates, scan.skipped, workers)
    _add_unique(scan, good, hashes)
    for name in scan.class_names:
        counts = [sum(1 for _, label in scan.images[split] if has_label(label, name)) for split in scan.images]
        if sum(counts) == 0:
            where = f"the manifest {scan.source!r}" if scan.is_manifest else f"{str(scan.root)!r}"
            raise DataError(f"No readable image in class {name!r} under {where}: every file was "
                            "skipped (see the reasons with `--debug` or in the audit). Fix or remove "
                            "the files, or remove the class.")


def scan_folder(root: str | os.PathLike, *, workers: int = 4) -> Scan:
    """Scan and audit a dataset folder; raise `DataError` for a folder that cannot be used.

    Args:
        root: path to the dataset folder.
        workers: int, threads used to decode-check files (Pillow releases the GIL), capped by
            `images.decode_threads` (decoding memory). Defaults to 4.
    """
    root = check_dataset_path(root)
    skipped: list = []
    presplit, groups = _split_groups(root, _class_dirs(root, skipped, "the dataset folder"), skipped)
    class_names = sorted(next(iter(groups.values())))
    _check_class_count(root, class_names)
    candidates = [(split, name, path) for split, classes in groups.items()
                  for name, folder in classes.items() for path in _list_class_files(folder, skipped)]
    scan = Scan(root=root, presplit=presplit, class_names=class_names,
                images={split: [] for split in groups}, skipped=skipped)
    audit_candidates(scan, candidates, workers)
    return scan
