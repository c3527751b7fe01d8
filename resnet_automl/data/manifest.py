"""Read a CSV or JSON Lines manifest (one row per image: a path, a label, optionally a split) into a `Scan`.

    path,label[,split]               a header names the columns (auto-detected, or --path-column ...)
    TRAINING,photos/1.jpg,cat        no header: columns by 0-based number (Vertex AI's import file)
    {"image": "1.jpg", "label": "cat", "split": "val"}   one JSON object per line

Paths are relative to the manifest's folder (or absolute); a path that leaves that folder, or an
absolute one, is refused unless `allow_absolute_paths`. The audit records what tables get wrong:
missing files, the same path twice (with the same or other labels), empty labels; each with its row.
Several labels in one cell (a JSON list, or text split at `label_delimiter`) make a multi-label dataset.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from resnet_automl.data.scan import MANIFEST_SUFFIXES, Scan, audit_candidates
from resnet_automl.errors import DataError

#: Column names recognised in a header (lower case), in order of preference.
PATH_NAMES = ("path", "image", "filename", "file", "image_path", "filepath", "file_name")
LABEL_NAMES = ("label", "labels", "class", "category", "target")
SPLIT_NAMES = ("split", "set", "subset", "ml_use")
#: Split values (lower case) -> split; None: not assigned, the split is drawn (as for class folders).
SPLIT_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test", "": None, "unassigned": None}


@dataclass(frozen=True)
class ManifestColumns:
    """Which columns of a manifest hold what; None: detected from the header.

    Attributes:
        path: str (a header name or key) or int (0-based column of a file without header), or None.
        label: the same, for the label(s).
        split: the same, for the split (train / val / test); None detects one when the header has it.
        label_delimiter: str or None, separates several labels in one cell (e.g. " " or "|").
        allow_absolute_paths: bool, accept absolute paths and paths that leave the manifest's folder.
        task: str, how labels are read: "auto" (default: multi-label when some row has several
            labels), "multilabel" (always) or "multiclass" (several labels in a row are an error).
    """

    path: str | int | None = None
    label: str | int | None = None
    split: str | int | None = None
    label_delimiter: str | None = None
    allow_absolute_paths: bool = False
    task: str = "auto"


def is_manifest(source) -> bool:
    """True when `source` names a file ending in .csv or .jsonl (a manifest rather than a folder)."""
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in MANIFEST_SUFFIXES \
        and not Path(source).is_dir()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"The manifest {str(path)!r} is not UTF-8 text (byte {exc.start} cannot be read). Save "
                        "it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet) and run the same command again.") from None
    except OSError as exc:
        raise DataError(f"The manifest {str(path)!r} cannot be read: {exc.strerror or exc}.") from None


def _pick(keys: list, given, names: tuple, what: str, path: Path, flag: str, required: bool):
    """The header key or column number for `what`: `given` when set (checked), else the first of `names`."""
    lowered = {str(key).strip().lower(): key for key in keys}
    if given is not None:
        if isinstance(given, int) or str(given).isdigit():
            return int(given)
        if str(given).strip().lower() in lowered:
            return lowered[str(given).strip().lower()]
        raise DataError(f"The manifest {str(path)!r} has no column {given!r} ({flag}); its columns are "
                        f"{[str(k) for k in keys]}.")
    found = next((lowered[name] for name in names if name in lowered), None)
    if found is None and required:
        raise DataError(f"The manifest {str(path)!r} has no header naming its {what} column (one of "
                        f"{', '.join(names)}); its first row is {[str(k) for k in keys]}. Add a header row, or pass "
                        f"{flag} NAME (or a 0-based column number for a file without header).")
    return found


def _csv_rows(path: Path, columns: ManifestColumns) -> list:
    """(row number, path text, label text or list, split text) per data row of a CSV manifest."""
    text = _read_text(path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    table = [row for row in csv.reader(text.splitlines(), dialect) if any(cell.strip() for cell in row)]
    if not table:
        raise DataError(f"The manifest {str(path)!r} is empty. Write one row per image: path,label.")
    numbered = all(isinstance(c, int) or (isinstance(c, str) and c.isdigit())
                   for c in (columns.path, columns.label) if c is not None) and columns.path is not None
    header = [] if numbered else table[0]
    keys = list(range(len(table[0]))) if numbered else header
    where = {name: (_pick(keys, given, names, name, path, flag, required) if not numbered or given is not None
                    else None)
             for name, given, names, flag, required in (
                 ("path", columns.path, PATH_NAMES, "--path-column", True),
                 ("label", columns.label, LABEL_NAMES, "--label-column", True),
                 ("split", columns.split, SPLIT_NAMES, "--split-column", False))}
    if numbered and where["label"] is None:
        raise DataError(f"The manifest {str(path)!r} is read without a header (--path-column is a number): "
                        "pass --label-column as a column number too.")
    index = {name: (key if numbered else header.index(key)) if key is not None else None
             for name, key in where.items()}
    rows = []
    for number, row in enumerate(table[(0 if numbered else 1):], start=1 if numbered else 2):
        cell = {name: (row[i].strip() if i is not None and i < len(row) else "") for name, i in index.items()}
        rows.append((number, cell["path"], cell["label"], cell["split"]))
    return rows


def _jsonl_rows(path: Path, columns: ManifestColumns) -> list:
    """(line number, path text, label text or list, split text) per line of a JSON Lines manifest."""
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"Line {number} of {str(path)!r} is not JSON ({exc.msg}). Write one JSON object per "
                            "line, e.g. {\"path\": \"cat/1.jpg\", \"label\": \"cat\"}.") from None
        if not isinstance(record, dict):
            raise DataError(f"Line {number} of {str(path)!r} is not a JSON object; write one object per line.")
        records.append((number, record))
    if not records:
        raise DataError(f"The manifest {str(path)!r} is empty. Write one JSON object per line.")
    keys = list(dict.fromkeys(key for _, record in records[:100] for key in record))
    path_key = _pick(keys, columns.path, PATH_NAMES, "path", path, "--path-column", True)
    label_key = _pick(keys, columns.label, LABEL_NAMES, "label", path, "--label-column", True)
    split_key = _pick(keys, columns.split, SPLIT_NAMES, "split", path, "--split-column", False)
    return [(number, str(record.get(path_key) or "").strip(), record.get(label_key),
             str(record.get(split_key) or "").strip() if split_key is not None else "")
            for number, record in records]


def _labels(value, delimiter: str | None) -> list:
    """The labels of one cell: a list as given, or text split at `delimiter`; empty ones dropped."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = "" if value is None else str(value).strip()
    parts = text.split(delimiter) if delimiter else [text]
    return [part.strip() for part in parts if part.strip()]


def _resolve(text: str, folder: Path, allow: bool, where: str) -> Path:
    path = Path(text).expanduser()
    resolved = (path if path.is_absolute() else folder / path).resolve()
    if not allow and (path.is_absolute() or not resolved.is_relative_to(folder)):
        raise DataError(f"{where} names {text!r}, which is outside the manifest's folder {str(folder)!r}. Write "
                        "paths relative to the manifest's folder, or allow absolute and outside paths with "
                        "--allow-absolute-paths (allow_absolute_paths=True).")
    return resolved


def _label_value(labels: list, multilabel: bool):
    """A row's label: its one label (str), or for a multi-label task the sorted tuple of its labels."""
    return tuple(sorted(set(labels))) if multilabel else labels[0]


def _collect(manifest: Path, rows: list, columns: ManifestColumns, multilabel: bool) -> tuple[list, list, set]:
    """(candidates as (split, label, path), skipped as {"path", "reason"}, splits named) of the rows; a
    label is a str, or with `multilabel` a tuple of str."""
    folder = manifest.parent
    skipped, seen, candidates, splits = [], {}, [], set()
    for number, path_text, label_value, split_text in rows:
        where = f"Row {number} of {str(manifest)!r}"
        labels = _labels(label_value, columns.label_delimiter)
        if not path_text:
            skipped.append({"path": f"{manifest.name}:{number}", "reason": "empty path"})
            continue
        if len(labels) > 1 and not multilabel:
            raise DataError(f"{where} gives {path_text!r} several labels {labels}, but the task is multiclass "
                            "(--task multiclass). Pass --task multilabel (or leave --task at auto), or leave "
                            "--label-delimiter unset when the delimiter is part of the label names.")
        if split_text.lower() not in SPLIT_VALUES:
            raise DataError(f"{where} has split {split_text!r}; use train, val (validation) or test "
                            "(Vertex AI's TRAINING, VALIDATION, TEST and UNASSIGNED are accepted too).")
        path = _resolve(path_text, folder, columns.allow_absolute_paths, where)
        if not labels:
            skipped.append({"path": str(path), "reason": f"empty label (row {number})"})
            continue
        label = _label_value(labels, multilabel)
        if path in seen:
            first_number, first_label = seen[path]
            reason = (f"listed again in row {number} with the same label (first in row {first_number})"
                      if label == first_label else
                      f"labelled {first_label!r} in row {first_number} and {label!r} in row {number}")
            skipped.append({"path": str(path), "reason": reason})
            if label != first_label:
                candidates = [c for c in candidates if c[2] != path]  # neither label can be trusted
            continue
        seen[path] = (number, label)
        if not path.is_file():
            skipped.append({"path": str(path), "reason": f"listed in row {number} but missing"})
            continue
        split = SPLIT_VALUES[split_text.lower()]
        splits.add(split)
        candidates.append((split or "train", label, path))
    return candidates, skipped, splits


def is_multilabel(rows: list, columns: ManifestColumns) -> bool:
    """True (bool) when `columns.task` is "multilabel", or "auto" and some row of `rows` has several labels."""
    if columns.task != "auto":
        return columns.task == "multilabel"
    return any(len(_labels(label, columns.label_delimiter)) > 1 for _, _, label, _ in rows)


def scan_manifest(manifest, columns: ManifestColumns = ManifestColumns(), *, workers: int = 4) -> Scan:
    """Read and audit a manifest into a `Scan` (root: the manifest's folder); raise `DataError` when unusable.

    A split column makes a pre-split dataset (rows without a split go to train, and a missing
    val or test split is drawn from train). `columns.task` "auto" reads a multi-label dataset
    when some row has several labels (a JSON list, or text split at `label_delimiter`),
    "multilabel" always, "multiclass" never (several labels in a row are then an error). A
    multi-label scan's labels are sorted tuples of label names.
    """
    manifest = Path(manifest).expanduser().resolve()
    if not manifest.is_file():
        raise DataError(f"The manifest {str(manifest)!r} does not exist. Pass a .csv or .jsonl file with one row "
                        "per image (path,label), or a folder of class subfolders.")
    rows = (_jsonl_rows if manifest.suffix.lower() == ".jsonl" else _csv_rows)(manifest, columns)
    multilabel = is_multilabel(rows, columns)
    candidates, skipped, splits = _collect(manifest, rows, columns, multilabel)
    class_names = sorted({name for _, label, _ in candidates for name in (label if multilabel else [label])})
    if not class_names:
        raise DataError(f"No row of {str(manifest)!r} gives a usable image and label (every label is empty or "
                        "every file is missing; see the audit). Fill the label column and check the paths.")
    if len(class_names) == 1:
        raise DataError(f"Every usable row of {str(manifest)!r} has the label {class_names[0]!r}; a classifier "
                        "needs at least two labels.")
    presplit = bool(splits - {None})
    if not presplit:  # no split given: one pool, split like a class-folder tree
        candidates = [("all", label, path) for _, label, path in candidates]
    scan = Scan(root=manifest.parent, presplit=presplit, class_names=class_names,
                images={name: [] for name in (("train", "val", "test") if presplit else ("all",))
                        if name == "train" or name == "all" or name in splits},
                skipped=skipped, source=str(manifest), layout=f"{manifest.suffix[1:].upper()} manifest",
                multilabel=multilabel)
    audit_candidates(scan, candidates, workers)
    return scan
