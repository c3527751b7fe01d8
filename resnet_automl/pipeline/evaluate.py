"""`resnet-automl evaluate`: score an exported model on a labelled folder and write a report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_automl.data import ManifestColumns, scan_dataset
from resnet_automl.data.images import SERVABLE_EXTENSIONS
from resnet_automl.errors import DataError
from resnet_automl.pipeline.run_dir import run_lock
from resnet_automl.report.build import build_report
from resnet_automl.serving.inference.predictor import load_model

BATCH = 64


def evaluate_exported(model_dir, data, out=None, columns: dict | None = None) -> dict:
    """Evaluate the SavedModel at `model_dir` on every readable image of the class folders or manifest `data`
    (a multi-label model: a manifest, scored at the model's own thresholds).

    Args:
        model_dir: run folder, model folder or version folder.
        data: a folder of class subfolders whose names are the model's labels (a pre-split tree
            is read whole).
        out: report folder. Defaults to `<version folder>/../evaluation-<data folder name>`.
        columns: dict of `ManifestColumns` fields (path, label, label_delimiter, allow_absolute_paths)
            for a manifest `data`; None values are left at their defaults. Defaults to None.
    """
    predictor = load_model(model_dir)
    multilabel = predictor.thresholds is not None
    given = {name.removesuffix("_column"): value for name, value in (columns or {}).items() if value is not None}
    scan = scan_dataset(data, ManifestColumns(**given, task="multilabel" if multilabel else "multiclass"))
    unknown = sorted(set(scan.class_names) - set(predictor.class_names))
    if unknown:
        raise DataError(f"Class folders {unknown} in {str(data)!r} are not labels of the model "
                        f"({predictor.class_names}). Rename or remove them.")
    index = {name: i for i, name in enumerate(predictor.class_names)}
    items = [(path, tuple(index[n] for n in name) if multilabel else index[name])
             for split in scan.images.values() for path, name in split]
    skipped = [p for p, _ in items if Path(p).suffix.lower() not in SERVABLE_EXTENSIONS]
    items = [(p, label) for p, label in items if Path(p).suffix.lower() in SERVABLE_EXTENSIONS]
    if not items:
        raise DataError(f"No JPEG/PNG/GIF/BMP image to evaluate in {str(data)!r}.")
    probabilities = np.concatenate([predictor.probabilities([p for p, _ in items[i:i + BATCH]])
                                    for i in range(0, len(items), BATCH)])
    out = Path(out) if out else predictor.version_dir.parent.parent / f"evaluation-{Path(data).resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    context = {"model": {"version_dir": str(predictor.version_dir)},
               "audit": {"source": str(scan.root), "skipped": scan.skipped + [
                   {"path": p, "reason": "format the serving graph cannot decode (WebP)"} for p in skipped],
                   "num_skipped": len(scan.skipped) + len(skipped)},
               "notes": ["Evaluated through the exported serving_default signature (raw bytes in)."]}
    with run_lock(out):  # two evaluations into one folder would interleave their files
        return build_report(probabilities, items, predictor.class_names, context, out,
                            thresholds=predictor.thresholds if multilabel else None)
