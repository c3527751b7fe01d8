"""What every benchmark script shares: its work folder, its log lines, its results file and table, and
the baseline each one beats: a logistic regression on the pixels (scikit-learn).

A helper, imported by the scripts (`sys.path` holds this folder); it runs nothing on its own.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

#: Iterations of the logistic regression: enough to converge on 28-64 px pixels.
LOGISTIC_MAX_ITER = 5000


def log(line: str) -> None:
    """Print one progress line at once (benchmarks run for minutes; a pipe must not hold it back)."""
    print(line, flush=True)


@contextlib.contextmanager
def work_folder(workdir, prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """The benchmark's work folder: `workdir` (str or Path, kept), or a temporary folder named
    `prefix`-... that is removed when the block ends unless `keep` (a smoke run keeps it for the test)."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if workdir is None and not keep:
            shutil.rmtree(work, ignore_errors=True)


def save_rows(work: Path, name: str, rows: list) -> Path:
    """Write `rows` (list of dicts) as `work/<name>.json` and return its path."""
    path = Path(work) / f"{name}.json"
    path.write_text(json.dumps(rows, indent=1, default=str))
    return path


def _width(spec: str) -> str:
    """The alignment and width of a format spec: ">8.4f" -> ">8"."""
    return re.match(r"[<>^]?\d*", spec).group(0)


def _cell(row: dict, key, spec: str) -> str:
    value = key(row) if callable(key) else row.get(key)
    try:
        return format(value, spec)
    except (TypeError, ValueError):  # None, or a str in a numeric column
        return format(str(value), _width(spec))


def print_table(rows: list, columns: list) -> None:
    """Print `rows` (list of dicts) under a header: `columns` is a list of (header, key or callable of
    the row, format spec such as ">8.4f"), one per column."""
    print(" ".join(format(header, _width(spec)) for header, _, spec in columns))
    for row in rows:
        print(" ".join(_cell(row, key, spec) for _, key, spec in columns))


def pixels(images) -> np.ndarray:
    """uint8 images [N, ...] as float32 rows [N, pixels] in 0..1 (the baseline's features)."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def pixel_baseline(images, labels, *, multilabel: bool = False, max_iter: int = LOGISTIC_MAX_ITER):
    """A logistic regression on the pixels of uint8 `images` [N, ...] with `labels` (int [N], or
    multi-hot [N, C] when `multilabel`: one regression per label), fitted with up to `max_iter`
    iterations and returned (scikit-learn). Score it on other images with `pixels(images)`."""
    from sklearn.linear_model import LogisticRegression

    linear = LogisticRegression(max_iter=max_iter)
    if multilabel:
        from sklearn.multiclass import OneVsRestClassifier

        linear = OneVsRestClassifier(linear)
    return linear.fit(pixels(images), labels)
