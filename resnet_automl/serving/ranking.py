"""Top-k labels and scores of probability rows: what every predictor returns per image."""
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
