"""The multi-label parts of the report: metrics at the model's thresholds, the threshold table, the
label co-occurrence matrix and the most confident mistakes per label (see docs/report-schema.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_automl.data.split import multi_hot
from resnet_automl.report import plots
from resnet_automl.training.metrics import multilabel_metrics

#: Mistakes kept per label: the most confident false positives and false negatives.
MISTAKES_PER_LABEL = 2


def multilabel_mistakes(probabilities: np.ndarray, targets: np.ndarray, thresholds: list, items: list,
                        class_names: list, per_label: int = MISTAKES_PER_LABEL) -> list:
    """Per label, its `per_label` most confident false positives (highest probability on an image without
    the label) and false negatives (lowest on an image with it): dicts with path, label, kind, score,
    true and predicted (the image's label sets, joined with ", ")."""
    cuts = np.asarray(thresholds, dtype=np.float64)
    predicted = probabilities >= cuts[None, :]
    truth = targets > 0.5

    def names(row) -> str:
        return ", ".join(class_names[c] for c in np.flatnonzero(row)) or "(none)"

    mistakes = []
    for c, label in enumerate(class_names):
        false_positive = np.flatnonzero(predicted[:, c] & ~truth[:, c])
        false_negative = np.flatnonzero(~predicted[:, c] & truth[:, c])
        worst_positive = false_positive[np.argsort(-probabilities[false_positive, c])][:per_label]
        worst_negative = false_negative[np.argsort(probabilities[false_negative, c])][:per_label]
        chosen = [(i, "false positive") for i in worst_positive] + [(i, "false negative") for i in worst_negative]
        mistakes += [{"path": str(items[i][0]), "label": label, "kind": kind, "score": float(probabilities[i, c]),
                      "true": names(truth[i]), "predicted": names(predicted[i])} for i, kind in chosen]
    return mistakes


def multilabel_report(probabilities: np.ndarray, items: list, class_names: list, thresholds: list, out: Path,
                      threshold_table: dict | None = None) -> tuple[dict, dict]:
    """(report entries, pictures) of a multi-label model on the test `items` [(path, label indices)]:
    `training.metrics.multilabel_metrics` at `thresholds`, the `threshold_table` (label -> how its
    threshold was chosen, from run.json), the mistakes, and the co-occurrence and gallery PNGs in `out`."""
    targets = multi_hot([label for _, label in items], len(class_names))
    report = multilabel_metrics(probabilities, targets, class_names, thresholds)
    report["threshold_table"] = threshold_table or {name: {"threshold": t, "chosen": "given"}
                                                    for name, t in zip(class_names, thresholds, strict=True)}
    report["mistakes"] = multilabel_mistakes(probabilities, targets, thresholds, items, class_names)
    gallery = [{**m, "true": f"{m['label']} {'absent' if m['kind'] == 'false positive' else 'present'}",
                "predicted": m["kind"]} for m in report["mistakes"]]
    pictures = {
        "label_cooccurrence": plots.confusion_matrix_plot(
            report["cooccurrence"], class_names, out / "label_cooccurrence.png", axes_labels=("label", "also has"),
            title="Label co-occurrence on the test split (colour: share of the row label's images)",
            row_total="diagonal"),
        "mistakes": plots.mistakes_gallery(gallery[:12], out / "mistakes.png"),
    }
    return report, pictures


def multilabel_sections(report: dict) -> list:
    """The report's multi-label tables as (title, header, rows): summary, per label, thresholds, co-occurrence."""
    names = report["class_names"]
    summary = [["test images", report["num_test_images"]], ["mean average precision (macro)", report["map"]],
               ["micro F1", report["micro_f1"]], ["macro F1", report["macro_f1"]],
               ["subset accuracy (every label right)", report["accuracy"]], ["Hamming loss", report["hamming_loss"]],
               ["labels per image (true / predicted)", report["label_cardinality"]]]
    per_label = [[name, m["precision"], m["recall"], m["f1"], m["ap"], m["support"], m["threshold"]]
                 for name, m in report["per_class"].items()]
    table = report.get("threshold_table") or {}
    thresholds = [[name, row.get("threshold"), row.get("f1"), row.get("positives"), row.get("chosen")]
                  for name, row in table.items()]
    return [("Summary (multi-label)", ["metric", "value"], summary),
            ("Per label (at its threshold)", ["label", "precision", "recall", "F1", "AP", "support", "threshold"],
             per_label),
            ("Decision thresholds", ["label", "threshold", "val F1", "val positives", "chosen"], thresholds),
            ("Label co-occurrence (test images with both labels)", ["label", *names],
             [[name, *row] for name, row in zip(names, report["cooccurrence"], strict=True)]),
            ("Most confident mistakes per label", ["label", "kind", "score", "image", "true labels", "predicted"],
             [[m["label"], m["kind"], m["score"], m["path"], m["true"], m["predicted"]] for m in report["mistakes"]])]
