"""Prediction under load: memory stays flat over many calls of one loaded model."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: Batches of images per call and calls in all (10,000 predictions).
BATCH, CALLS = 100, 100
#: Resident memory may grow by at most this much between the 2,000th and the 10,000th prediction.
MAX_GROWTH_MB = 50


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status on this system")


def _encoded(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_ten_thousand_predictions_keep_memory_flat(trained_run):
    import resnet_automl

    predictor = resnet_automl.load_model(trained_run.paths["run_dir"])
    images = [_encoded(seed) for seed in range(BATCH)]
    rss = {}
    for call in range(1, CALLS + 1):
        results = predictor.predict(images, top_k=2)
        assert len(results) == BATCH
        if call * BATCH in (2000, 10000):
            rss[call * BATCH] = _rss_mb()
    growth = rss[10000] - rss[2000]
    print(f"RSS after 2,000 predictions {rss[2000]:.0f} MB, after 10,000 {rss[10000]:.0f} MB "
          f"(+{growth:.1f} MB)")
    assert growth < MAX_GROWTH_MB
