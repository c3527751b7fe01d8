"""Report pictures with matplotlib's headless backend, returned as PNG files."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_matrix_plot(matrix, class_names: list, path: Path) -> Path:
    """Heat map of the row-normalised confusion matrix, with counts in the cells."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    size = min(4 + 0.5 * len(class_names), 16)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, [str(n) for n in class_names], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(n) for n in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(class_names) <= 30:
        for i in ticks:
            for j in ticks:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title("Confusion matrix (colour: share of the true class)")
    return _save(fig, path)


def reliability_plot(bins: list, ece: float, path: Path) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 5))
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    accuracy = [b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins]
    ax.bar(centres, accuracy, width=1.0 / len(bins), edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    return _save(fig, path)


def training_curves_plot(history: dict, path: Path) -> Path:
    """Loss and accuracy per epoch of the final training run."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if history.get(key):
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    return _save(fig, path)


def mistakes_gallery(mistakes: list, path: Path, thumb: int = 96) -> Path:
    """Thumbnails of the most confident mistakes: each item has path, true, predicted, score."""
    columns = min(4, max(1, len(mistakes)))
    rows = max(1, -(-len(mistakes) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, mistakes):
        from resnet_automl.data import load_rgb

        image = Image.fromarray(load_rgb(item["path"]))
        image.thumbnail((thumb, thumb))
        ax.imshow(image)
        ax.set_title(f"true: {item['true']}\npred: {item['predicted']} ({item['score']:.2f})", fontsize=9)
    if not mistakes:
        axes.flat[0].text(0.5, 0.5, "no mistakes on the test set", ha="center", va="center")
    return _save(fig, path)
