"""Predictions for many images into a CSV or JSON Lines file, streamed in batches.

Inputs are image files, folders (searched recursively, in sorted order) and text files of paths
(one per line, relative to the text file's folder, `#` comments and blank lines skipped). Memory
stays flat in the number of images: paths are read lazily, each batch's bytes are dropped once
predicted and rows are written as they come. A file that does not decode (truncated, not an image)
gets a row with its error and is skipped; the count is returned.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from resnet_automl.data.images import IMAGE_EXTENSIONS
from resnet_automl.errors import DataError
from resnet_automl.runtime.files import atomic_path, spreadsheet_safe

#: Output formats by file suffix.
FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
#: Images per batch handed to the model.
DEFAULT_BATCH_SIZE = 64


@dataclass
class BatchPredictionSummary:
    """What `predict_to_file` wrote.

    Attributes:
        out: Path of the predictions file.
        predicted: int, rows with a prediction.
        skipped: int, rows with an error instead (files that did not decode or could not be read).
    """

    out: Path
    predicted: int
    skipped: int


def output_format(out: str | os.PathLike) -> str:
    """"csv" or "jsonl" from the suffix of `out`; DataError naming the fix otherwise."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"The output file {str(out)!r} must end in .csv or .jsonl (the format is read from the "
                        "suffix).")
    return FORMATS[suffix]


def check_output(out: str | os.PathLike) -> str:
    """The format of `out` (`output_format`), after checking that its folder exists and is writable;
    DataError naming the fix otherwise."""
    kind = output_format(out)
    folder = Path(out).expanduser().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise DataError(f"Cannot write {str(out)!r}: its folder does not exist or is not writable. Pass --out in a "
                        "folder you can write to.")
    return kind


def iter_image_paths(inputs: Iterable) -> Iterator[Path]:
    """Each image path of `inputs` (files, folders searched recursively, `.txt` lists of paths), lazily.

    A folder yields the files with an image suffix (jpg, jpeg, png, gif, bmp, webp: the model serves
    all but webp, which then shows as a decode error) in sorted order; an
    image file given by name is yielded whatever its suffix (a wrong one shows as a decode error).
    Raises DataError for an input that does not exist.
    """
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                        yield Path(root) / name
        elif path.is_file() and path.suffix.lower() == ".txt":
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    entry = line.strip()
                    if entry and not entry.startswith("#"):
                        listed = Path(entry).expanduser()
                        yield listed if listed.is_absolute() else path.parent / listed
        elif path.is_file():
            yield path
        else:
            raise DataError(f"Input {str(path)!r} does not exist. Pass image files, folders of images or a .txt "
                            "file of image paths.")


def batched(paths: Iterable, size: int) -> Iterator[list]:
    """Lists of at most `size` (int) items of `paths`, in order, read lazily."""
    batch = []
    for path in paths:
        batch.append(path)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Writer:
    """Rows into a CSV (path, label, score, top_labels, top_scores, error) or JSON Lines file. For a
    multi-label model `top_labels` are the labels at or above their thresholds (maybe none), best first.
    A CSV text cell that a spreadsheet would run as a formula gets a leading apostrophe
    (`files.spreadsheet_safe`); JSON Lines keeps every value as it is."""

    def __init__(self, handle, kind: str):
        self.handle, self.kind = handle, kind
        if kind == "csv":
            self.csv = csv.writer(handle)
            self.csv.writerow(["path", "label", "score", "top_labels", "top_scores", "error"])

    def write(self, path: Path, labels: list | None, scores: list | None, error: str = "") -> None:
        if self.kind == "csv":
            text = [str(path), labels[0] if labels else "", "|".join(labels or []), error]
            path_cell, label, top_labels, error = (spreadsheet_safe(cell) for cell in text)  # no formula runs
            self.csv.writerow([path_cell, label, f"{scores[0]:.6f}" if scores else "", top_labels,
                               "|".join(f"{s:.6f}" for s in scores or []), error])
        else:
            row = {"path": str(path), "labels": labels, "scores": scores} if labels is not None and not error \
                else {"path": str(path), "error": error}
            self.handle.write(json.dumps(row) + "\n")


def _predict_batch(predictor, batch: list, top_k: int, writer: _Writer) -> tuple[int, int]:
    """Predict one batch, writing a row per image; returns (predicted, skipped)."""
    encoded, readable, skipped = [], [], 0
    for path in batch:
        try:
            encoded.append(path.read_bytes())
            readable.append(path)
        except OSError as exc:
            writer.write(path, None, None, f"could not read the file: {exc.strerror or exc}")
            skipped += 1
    try:
        results = predictor.predict(encoded, top_k=top_k) if encoded else []
    except DataError:  # a file in the batch does not decode: name it, then predict the others at once
        decodable = [predictor.decodes(data) for data in encoded]
        for path in (p for p, ok in zip(readable, decodable, strict=True) if not ok):
            writer.write(path, None, None, "not a decodable JPEG, PNG, GIF or BMP image (truncated or another "
                         "kind of file)")
            skipped += 1
        readable = [p for p, ok in zip(readable, decodable, strict=True) if ok]
        encoded = [d for d, ok in zip(encoded, decodable, strict=True) if ok]
        results = predictor.predict(encoded, top_k=top_k) if encoded else []
    pairs = list(zip(readable, results, strict=True))
    for path, result in pairs:
        writer.write(path, result["labels"], result["scores"])
    return len(pairs), skipped


def predict_to_file(predictor, inputs: Iterable, out: str | os.PathLike, *, top_k: int = 1,
                    batch_size: int = DEFAULT_BATCH_SIZE, progress=None) -> BatchPredictionSummary:
    """Write one row per image of `inputs` to `out` (.csv or .jsonl); the file appears whole at the end.

    Args:
        predictor: a `serving.inference.predictor.Predictor` (`load_model`).
        inputs: iterable of image files, folders and `.txt` files of paths (`iter_image_paths`).
        out: str or PathLike, the predictions file; its suffix picks the format.
        top_k: int, labels (and scores) per row, best first. Defaults to 1.
        batch_size: int, images per call of the model. Defaults to 64.
        progress: callable(done: int) after each batch, or None. Defaults to None.

    Raises DataError for a wrong suffix, a missing input or an output folder that cannot be written.
    """
    out = Path(out).expanduser()
    kind = check_output(out)
    predicted = skipped = 0
    with atomic_path(out) as staging, open(staging, "w", encoding="utf-8", newline="") as handle:
        writer = _Writer(handle, kind)
        for batch in batched(iter_image_paths(inputs), max(1, int(batch_size))):
            done, bad = _predict_batch(predictor, batch, top_k, writer)
            predicted, skipped = predicted + done, skipped + bad
            if progress is not None:
                progress(predicted + skipped)
    return BatchPredictionSummary(out=out, predicted=predicted, skipped=skipped)


def print_progress(stream=None):
    """A `progress` callable that rewrites one line on a terminal (and prints nothing elsewhere)."""
    from resnet_automl.runtime.progress import on_terminal

    stream = stream or sys.stderr
    if not on_terminal(stream):
        return None

    def show(done: int) -> None:
        stream.write(f"\r[predict] {done} images")
        stream.flush()

    return show
