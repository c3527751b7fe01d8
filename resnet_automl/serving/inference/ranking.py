"""Top-k labels and scores of probability rows (or, for a multi-label model, the labels at or above their
thresholds): what every predictor returns per image."""
from __future__ import annotations

import numpy as np


def top_k_results(probabilities: np.ndarray, class_names: list, top_k: int) -> list:
    """Per row of `probabilities` [N, C]: {"labels": the top-k labels, "scores": their probabilities,
    "probabilities": label -> probability}; `top_k` is clipped to 1..C."""
    k = max(1, min(int(top_k), len(class_names)))
    results = []
    for row in probabilities:
        order = np.argsort(-row)[:k]
        results.append({"labels": [class_names[i] for i in order], "scores": [float(row[i]) for i in order],
                        "probabilities": {name: float(p) for name, p in zip(class_names, row, strict=True)}})
    return results


def thresholded_results(probabilities: np.ndarray, class_names: list, thresholds: list) -> list:
    """Per row of a multi-label model's `probabilities` [N, C]: {"labels": the labels whose probability
    reaches their threshold (list of float, one per label), best first (maybe none), "scores": their
    probabilities, "probabilities": label -> probability}."""
    cuts = np.asarray(thresholds, dtype=np.float64)
    results = []
    for row in probabilities:
        chosen = [i for i in np.argsort(-row) if row[i] >= cuts[i]]
        results.append({"labels": [class_names[i] for i in chosen], "scores": [float(row[i]) for i in chosen],
                        "probabilities": {name: float(p) for name, p in zip(class_names, row, strict=True)}})
    return results


def predictions(probabilities: np.ndarray, class_names: list, top_k: int, thresholds: list | None) -> list:
    """`thresholded_results` for a multi-label model (`thresholds` given), else `top_k_results`."""
    if thresholds is not None:
        return thresholded_results(probabilities, class_names, thresholds)
    return top_k_results(probabilities, class_names, top_k)
