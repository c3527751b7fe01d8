"""The model card: rendered from the report, escaped, honest about small test splits and calibration,
and written beside the export."""
from __future__ import annotations

from pathlib import Path

from resnet_automl.report.model_card import render_model_card


def _report(**overrides) -> dict:
    report = {
        "class_names": ["cat", "dog | wolf"], "num_test_images": 24, "accuracy": 0.875, "balanced_accuracy": 0.87,
        "top_k": 1, "top_k_accuracy": 0.875, "ece": 0.12, "log_loss": 0.4, "backbone": "resnet18",
        "per_class": {"cat": {"precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 12},
                      "dog | wolf": {"precision": 0.85, "recall": 0.8, "f1": 0.82, "support": 12}},
        "hyperparameters": {"backbone": "resnet18", "trainable_stages": 2, "learning_rate": 0.001},
        "pretrained": {"kind": "imagenet"}, "trials": [{}, {}, {}],
        "model": {"params": 11_000_000, "image_size": 128},
        "budget": {"allowed": {"minutes": 30, "max_params": None}},
        "audit": {"source": "photos/", "layout": "class folders", "imbalanced": True, "imbalance_ratio": 3.0,
                  "counts": {"train": {"cat": 80, "dog | wolf": 27}, "val": {"cat": 17, "dog | wolf": 6},
                             "test": {"cat": 12, "dog | wolf": 12}},
                  "skipped": [{"path": "photos/cat/broken.jpg", "reason": "not an image"}]},
        "export": {"passed": True, "max_abs_diff": 1e-6, "tolerance": 1e-4, "images": 16,
                   "signatures": ["serving_default", "serving_tensor"]},
        "latency_ms": {"batch1_p50": 4.2, "batch1_p95": 5.0}, "versions": {"keras": "3"},
        "notes": ["Search trials ran without augmentation."], "warnings": [],
    }
    report.update(overrides)
    return report


def test_the_card_describes_use_data_metrics_and_limits():
    card = render_model_card(_report())
    for heading in ("## Model details", "## Intended use", "## Training data", "## Evaluation",
                    "## How it was trained", "## Deployment", "## Limitations"):
        assert heading in card
    assert "dog \\| wolf" in card and "| dog | wolf |" not in card  # a class name cannot break a table
    assert "| dog \\| wolf | 27 | 6 | 12 |" in card  # images per class and split
    assert "1 file(s) skipped" in card and "Imbalanced classes" in card
    assert "ImageNet weights" in card and "trainable stages 2" in card and "minutes=30" in card
    assert "passed" in card and "Search trials ran without augmentation." in card
    assert "The test split is small (12 image(s)" in card  # fewer than 30 per class
    assert "not calibrated probabilities (expected calibration error 0.120)" in card
    assert "Weakest class on the test split: dog \\| wolf (recall 0.8)" in card


def test_a_large_calibrated_test_split_gets_no_such_warnings():
    per_class = {"cat": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 400},
                 "dog | wolf": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 400}}
    card = render_model_card(_report(per_class=per_class, ece=0.01, accuracy=1.0, export=None))
    assert "test split is small" not in card and "not calibrated" not in card and "Weakest" not in card
    assert "Not exported in this run" in card


def test_a_fit_writes_the_card_beside_the_export(trained_run):
    report_card = Path(trained_run.paths["run_dir"]) / "report" / "model_card.md"
    model_card = Path(trained_run.paths["run_dir"]) / "model" / "model_card.md"
    assert report_card.read_text() == model_card.read_text()
    text = model_card.read_text()
    assert all(name.replace("|", "\\|") in text for name in trained_run.class_names)
    assert "checked in a fresh process" in text and "passed" in text
