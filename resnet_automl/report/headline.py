"""The report's headline: the test accuracy with its 95% interval, and a sanity baseline computed in
the same run (a logistic regression on small pixels of the same train split, scored on the same
test split), so a reader sees how sure the number is and whether the network earns its keep."""
from __future__ import annotations

import numpy as np

#: Confidence of the accuracy interval.
INTERVAL_CONFIDENCE = 0.95
#: Side (px) the baseline sees: images larger than this are shrunk to it.
BASELINE_SIDE = 32
#: Training images the baseline learns from at most (evenly spaced over the train split), to bound its seconds.
BASELINE_MAX_IMAGES = 5000
#: Iterations of the baseline's solver.
BASELINE_MAX_ITER = 1000


def accuracy_interval(correct: int, total: int, confidence: float = INTERVAL_CONFIDENCE) -> list | None:
    """[low, high] of the Wilson score interval of `correct` (int) out of `total` (int) at
    `confidence` (default 0.95; scipy's `binomtest(...).proportion_ci`), or None without images.

    Example: 43 of 48 -> [0.78, 0.96] (rounded).
    """
    if total <= 0:
        return None
    from scipy.stats import binomtest

    interval = binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def small_pixels(images, side: int) -> tuple[np.ndarray, int]:
    """(float32 rows [N, s*s*3] in 0..1, s) of uint8 images [N, S, S, 3]: averaged over k x k blocks,
    k the smallest whole number that brings S to at most `side` (the last S mod k rows and columns
    left out); S itself when it is at most `side`."""
    images = np.asarray(images)
    size = images.shape[1]
    step = max(1, int(np.ceil(size / side)))
    small = size // step
    if step > 1:
        cropped = images[:, :small * step, :small * step, :].astype(np.float32)
        images = cropped.reshape(len(images), small, step, small, step, images.shape[-1]).mean(axis=(2, 4))
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, small


def pixel_baseline(train_images, train_labels, test_images, test_labels, *, side: int = BASELINE_SIDE,
                   max_images: int = BASELINE_MAX_IMAGES) -> dict | None:
    """A multi-class logistic regression (scikit-learn) on the pixels of up to `max_images` training
    images (evenly spaced) shrunk to about `side` px, scored on the test images.

    Returns {"name", "accuracy", "train_images", "side"}, or None when there is nothing to score
    (no test images, or one class in the training images).
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if not len(test_labels) or len(np.unique(train_labels)) < 2:
        return None
    from sklearn.linear_model import LogisticRegression

    index = np.unique(np.linspace(0, len(train_labels) - 1, num=min(max_images, len(train_labels))).astype(int))
    x, small = small_pixels(np.asarray(train_images)[index], side)
    linear = LogisticRegression(max_iter=BASELINE_MAX_ITER).fit(x, train_labels[index])
    accuracy = float(np.mean(linear.predict(small_pixels(test_images, side)[0]) == test_labels))
    return {"name": f"logistic regression on {small} px pixels", "accuracy": round(accuracy, 4),
            "train_images": int(len(index)), "side": int(small)}
