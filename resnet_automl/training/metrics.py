"""Evaluation metrics, all from scikit-learn except the expected calibration error: single-label
(`classification_metrics`) and multi-label (`multilabel_metrics`, `mean_average_precision`,
`choose_thresholds`)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

CALIBRATION_BINS = 10
#: Decision threshold of a class whose validation images hold no positive (nothing to choose with).
DEFAULT_THRESHOLD = 0.5


def per_class_average_precision(targets, scores) -> list:
    """Average precision (scikit-learn) of each column of `scores` [N, C] against multi-hot `targets`
    [N, C]; None for a class with no positive (AP is undefined there)."""
    targets, scores = np.asarray(targets) > 0.5, np.asarray(scores, dtype=np.float64)
    return [float(average_precision_score(targets[:, c], scores[:, c])) if targets[:, c].any() else None
            for c in range(targets.shape[1])]


def mean_average_precision(targets, scores) -> float:
    """Macro mean of `per_class_average_precision` over the classes with a positive (float; 0.0 when none has)."""
    values = [ap for ap in per_class_average_precision(targets, scores) if ap is not None]
    return float(np.mean(values)) if values else 0.0


def multilabel_log_loss(targets, probabilities) -> float:
    """Binary cross-entropy (float) of sigmoid `probabilities` [N, C] against multi-hot `targets` [N, C],
    summed over labels and averaged over images: the training loss (`MultiLabelCrossentropy`) unweighted."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(targets, dtype=np.float64)
    return float(-np.mean(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p), axis=1))) if y.size else 0.0


def categorical_log_loss(labels, probabilities) -> float:
    """Cross-entropy (scikit-learn's log loss, float) of softmax `probabilities` [N, C] against
    `labels` [N], every class counted; probabilities clipped at 1e-12 and renormalised. 0.0 for no image."""
    probabilities = np.asarray(probabilities)
    if not len(probabilities):
        return 0.0
    clipped = np.clip(probabilities, 1e-12, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return float(log_loss(labels, clipped, labels=list(range(clipped.shape[1]))))


def validation_score(probabilities, labels, metric: str) -> float:
    """`metric` of `probabilities` against `labels`: "balanced_accuracy" (single-label, argmax),
    "map" (multi-label, `mean_average_precision`) or "accuracy" (argmax, or subset accuracy at 0.5)."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if metric == "map":
        return mean_average_precision(labels, probabilities)
    if labels.ndim == 2:
        return float(np.mean(np.all((probabilities >= DEFAULT_THRESHOLD) == (labels > 0.5), axis=1)))
    predicted = np.argmax(probabilities, axis=1)
    if metric == "balanced_accuracy":
        return float(balanced_accuracy_score(labels, predicted))
    return float(np.mean(predicted == labels))


def validation_logs(probabilities, labels, *, multilabel: bool = False, balanced: bool = False) -> dict:
    """The epoch logs of one pass over the validation images, named as Keras names them:
    "val_accuracy" (argmax, or subset accuracy at 0.5 for `multilabel`), "val_loss" (cross-entropy,
    or `multilabel_log_loss`; unweighted) and the objective when it is not accuracy: "val_map" for
    `multilabel` (bool, default False), "val_balanced_accuracy" when `balanced` (bool, default False)."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    logs = {"val_accuracy": validation_score(probabilities, labels, "accuracy")}
    if multilabel:
        logs.update(val_loss=multilabel_log_loss(labels, probabilities),
                    val_map=validation_score(probabilities, labels, "map"))
        return logs
    logs["val_loss"] = categorical_log_loss(labels, probabilities)
    if balanced:
        logs["val_balanced_accuracy"] = validation_score(probabilities, labels, "balanced_accuracy")
    return logs


def choose_thresholds(targets, scores) -> list:
    """Per class, the decision threshold on `scores` [N, C] that maximises F1 against multi-hot
    `targets` [N, C] (validation images): a list of {"threshold", "f1", "positives", "chosen"}, where
    "chosen" is "max F1 on val", or "default (no val positive)" with `DEFAULT_THRESHOLD`."""
    targets, scores = np.asarray(targets) > 0.5, np.asarray(scores, dtype=np.float64)
    rows = []
    for c in range(targets.shape[1]):
        positives = int(targets[:, c].sum())
        if positives == 0:
            rows.append({"threshold": DEFAULT_THRESHOLD, "f1": None, "positives": 0,
                         "chosen": "default (no val positive)"})
            continue
        precision, recall, cuts = precision_recall_curve(targets[:, c], scores[:, c])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        best = int(np.argmax(f1))
        rows.append({"threshold": float(cuts[best]), "f1": float(f1[best]), "positives": positives,
                     "chosen": "max F1 on val"})
    return rows


def multilabel_metrics(probabilities, targets, class_names: list, thresholds: list) -> dict:
    """Every number of a multi-label report from sigmoid `probabilities` [N, C], multi-hot `targets`
    [N, C] and per-class `thresholds` (list of float): per-class precision, recall, F1, AP and
    support at those thresholds; micro and macro F1, mAP, subset accuracy, Hamming loss; the
    true labels' co-occurrence counts."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = (np.asarray(targets) > 0.5).astype(int)
    predicted = (probabilities >= np.asarray(thresholds, dtype=np.float64)[None, :]).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, zero_division=0)
    ap = per_class_average_precision(truth, probabilities)
    return {
        "task": "multilabel",
        "num_test_images": int(len(truth)),
        "map": mean_average_precision(truth, probabilities),
        "micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(truth, predicted)),  # subset accuracy: every label of an image right
        "hamming_loss": float(hamming_loss(truth, predicted)),
        "label_cardinality": {"true": float(truth.sum(axis=1).mean()) if len(truth) else 0.0,
                              "predicted": float(predicted.sum(axis=1).mean()) if len(truth) else 0.0},
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "ap": ap[i], "support": int(support[i]), "threshold": float(thresholds[i])}
                      for i, name in enumerate(class_names)},
        "cooccurrence": (truth.T @ truth).tolist(),
    }


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
        "log_loss": categorical_log_loss(labels, probabilities),
        "ece": calib["ece"],
        "calibration_bins": calib["bins"],
    }
