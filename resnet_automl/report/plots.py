"""Report pictures drawn with matplotlib's object API and written as PNG files.

Each figure is a bare `matplotlib.figure.Figure` rendered by its own `FigureCanvasAgg`: pyplot is
not imported, matplotlib's backend is not switched and no figure is registered globally, so the
caller's matplotlib state (an interactive backend, open pyplot figures) is left as it was.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

#: Resolution of the written PNG files, in dots per inch.
DPI = 100


def _figure(figsize: tuple) -> Figure:
    """A new figure of `figsize` (width, height) inches with its own Agg canvas."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    """Lay out `fig`, write it to `path` as a PNG and return `path`."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    return path


def confusion_matrix_plot(matrix, class_names: list, path: Path, *, axes_labels: tuple = ("true", "predicted"),
                          title: str = "Confusion matrix (colour: share of the true class)",
                          row_total: str = "sum") -> Path:
    """Heat map of a row-normalised count matrix, with the counts in the cells.

    Args:
        matrix: array-like of int, shape (classes, classes); row i counts the images of true class i
            by predicted class (or, for a label co-occurrence matrix, the images of label i that
            also have label j).
        class_names: list of the class names, in label order.
        path: Path of the PNG file to write.
        axes_labels: (row axis, column axis) names. Defaults to ("true", "predicted").
        title: str, the figure's title. Defaults to the confusion matrix's.
        row_total: "sum" (default: a row's shares add up to 1) or "diagonal" (shares of the row's own
            count, as in a co-occurrence matrix whose diagonal counts each label's images).

    Returns:
        Path, `path`.
    """
    matrix = np.asarray(matrix)
    rows = np.diag(matrix)[:, None] if row_total == "diagonal" else matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    size = min(4 + 0.5 * len(class_names), 16)
    fig = _figure((size, size))
    ax = fig.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, [str(n) for n in class_names], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(n) for n in class_names])
    ax.set_ylabel(axes_labels[0])
    ax.set_xlabel(axes_labels[1])
    if len(class_names) <= 30:
        for i in ticks:
            for j in ticks:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def reliability_plot(bins: list, ece: float, path: Path) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal.

    Args:
        bins: list of dict with "low" and "high" (float, the bin's confidence range) and "accuracy"
            (float, or None for an empty bin, drawn as 0).
        ece: float, the expected calibration error shown in the title.
        path: Path of the PNG file to write.

    Returns:
        Path, `path`.
    """
    fig = _figure((5, 5))
    ax = fig.add_subplot()
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
    """Loss and accuracy per epoch of the final training run.

    Args:
        history: dict of metric name ("loss", "val_loss", "accuracy", "val_accuracy") to the list of
            its values per epoch; missing or empty metrics are left out.
        path: Path of the PNG file to write.

    Returns:
        Path, `path`.
    """
    fig = _figure((10, 4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if history.get(key):
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return _save(fig, path)


def mistakes_gallery(mistakes: list, path: Path, thumb: int = 96) -> Path:
    """Thumbnails of the most confident mistakes.

    Args:
        mistakes: list of dict with "path" (the image file), "true" and "predicted" (class names) and
            "score" (float, the predicted class's probability). An empty list draws a placeholder.
        path: Path of the PNG file to write.
        thumb: int, the longest side of a thumbnail in pixels. Defaults to 96.

    Returns:
        Path, `path`.
    """
    from resnet_automl.data import load_rgb

    columns = min(4, max(1, len(mistakes)))
    rows = max(1, -(-len(mistakes) // columns))
    fig = _figure((3 * columns, 3.2 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, mistakes, strict=False):
        image = Image.fromarray(load_rgb(item["path"]))
        image.thumbnail((thumb, thumb))
        ax.imshow(image)
        ax.set_title(f"true: {item['true']}\npred: {item['predicted']} ({item['score']:.2f})", fontsize=9)
    if not mistakes:
        axes.flat[0].text(0.5, 0.5, "no mistakes on the test set", ha="center", va="center")
    return _save(fig, path)
