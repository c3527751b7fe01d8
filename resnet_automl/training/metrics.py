"""Evaluation metrics, all from scikit-learn except the expected calibration error."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

CALIBRATION_BINS = 10


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error of the top-1 confidence, and the reliability-diagram bins.

    ECE = sum over equal-width confidence bins of |accuracy - mean confidence| x bin share
    (Guo et al., 2017). scikit-learn's `calibration_curve` is binary-only, hence this function.
    """
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        accuracy = float(correct[mask].mean()) if count else None
        mean_confidence = float(confidence[mask].mean()) if count else None
        if count:
            ece += abs(accuracy - mean_confidence) * count / len(labels)
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "accuracy": accuracy, "confidence": mean_confidence})
    return {"ece": float(ece), "bins": rows}


def classification_metrics(probabilities: np.ndarray, labels, class_names: list, top_k: int = 3) -> dict:
    """Every number of the report's evaluation section, from probabilities [N, C] and labels [N]."""
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    indices = list(range(len(class_names)))
    k = min(top_k, len(class_names) - 1) if len(class_names) > 2 else 1
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=indices,
                                                                     zero_division=0)
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(labels, predicted, labels=indices, average=average,
                                                     zero_division=0)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    matrix = confusion_matrix(labels, predicted, labels=indices)
    normalised = confusion_matrix(labels, predicted, labels=indices, normalize="true")
    try:
        if len(class_names) == 2:
            roc_auc = float(roc_auc_score(labels, probabilities[:, 1]))
        else:
            roc_auc = float(roc_auc_score(labels, probabilities, multi_class="ovr", labels=indices))
    except ValueError:  # a class absent from the test labels: one-vs-rest AUC is undefined
        roc_auc = None
    clipped = np.clip(probabilities, 1e-12, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    calib = calibration(probabilities, labels)
    return {
        "num_test_images": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "top_k": k,
        "top_k_accuracy": float(top_k_accuracy_score(labels, probabilities, k=k, labels=indices))
        if len(class_names) > 2 else float(accuracy_score(labels, predicted)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(class_names)},
        "averages": averages,
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalized": np.nan_to_num(normalised).round(4).tolist(),
        "roc_auc_ovr": roc_auc,
        "log_loss": float(log_loss(labels, clipped, labels=indices)),
        "ece": calib["ece"],
        "calibration_bins": calib["bins"],
    }
