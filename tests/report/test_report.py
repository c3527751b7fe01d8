"""The report: metrics against scikit-learn, required keys, escaping, and a real browser render."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from resnet_automl.report.build import build_report
from resnet_automl.training.metrics import calibration

DESIGN_KEYS = ["class_names", "num_test_images", "accuracy", "balanced_accuracy", "top_k_accuracy", "per_class",
               "confusion_matrix", "ece", "backbone", "hyperparameters", "trials", "selection", "latency_ms",
               "model", "budget", "timings"]
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def evil_report(tmp_path):
    names = [EVIL, "cat & dog", 'say "hi"']
    rng = np.random.default_rng(0)
    items = []
    for i in range(12):
        path = write_image(tmp_path / "imgs" / f"{i}<x>.png", seed=i)
        items.append((str(path), i % 3))
    probabilities = rng.dirichlet(np.ones(3), size=12)
    context = {"backbone": "tiny_resnet", "hyperparameters": {"trainable_stages": 2},
               "trials": [{"trial_id": "0", "hyperparameters": {"a": 1}, "score": 0.5, "seconds": 1.0,
                           "status": "COMPLETED", "message": ""}],
               "selection": [{"name": "tiny_resnet", "verdict": "chosen", "reason": EVIL},
                             {"name": "resnet18", "verdict": "over budget",
                              "reason": "estimated 8.1 min > budget 6 min"}],
               "latency_ms": {"batch1_p50": 1.0}, "model": {"params": 10}, "budget": {}, "timings": {},
               "audit": {"counts": {"train": {n: 1 for n in names}}, "skipped": [{"path": EVIL, "reason": "x"}]},
               "history": {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.7]}}
    report = build_report(probabilities, items, names, context, tmp_path / "report")
    return report, probabilities, items, tmp_path / "report"


def test_metrics_come_from_sklearn_and_keys_are_present(evil_report):
    report, probabilities, items, folder = evil_report
    labels = [label for _, label in items]
    assert report["accuracy"] == pytest.approx(accuracy_score(labels, probabilities.argmax(1)))
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probabilities.argmax(1)))
    written = json.loads((folder / "report.json").read_text())
    for key in DESIGN_KEYS:
        assert key in written, key
    assert sum(map(sum, written["confusion_matrix"])) == 12
    for png in ("confusion_matrix.png", "reliability.png", "mistakes.png", "training_curves.png"):
        assert (folder / png).stat().st_size > 1000


def test_ece_of_perfect_and_overconfident_models():
    labels = np.array([0, 1, 0, 1])
    assert calibration(np.eye(2)[labels], labels)["ece"] == 0.0
    wrong = np.eye(2)[1 - labels] * 0.98 + 0.01
    assert calibration(wrong, labels)["ece"] == pytest.approx(0.99)


def test_user_strings_are_escaped_in_html_and_markdown(evil_report):
    _, _, _, folder = evil_report
    page = (folder / "report.html").read_text()
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "cat &amp; dog" in page and "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    markdown = (folder / "report.md").read_text()
    assert EVIL not in markdown and "\\<script>alert(1)\\</script>" in markdown  # no raw HTML in Markdown
    assert "cat & dog" in markdown and "estimated 8.1 min > budget 6 min" in markdown  # text, not entities
    assert "&amp;" not in markdown and "&gt;" not in markdown and "&lt;" not in markdown


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(evil_report, tmp_path):
    _, _, _, folder = evil_report
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (folder / "report.html").resolve().as_uri()
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "Evaluation report" in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    dialogs = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True,
                             timeout=120).stdout.count("<script")
    assert dialogs == 0


def test_fit_report_has_context(trained_run):
    report = trained_run.report
    assert report["backbone"] == "tiny_resnet" and report["latency_ms"]["batch1_p50"] > 0
    assert report["model"]["params"] > 0 and report["model"]["size_mb"] > 0
    assert report["audit"]["num_skipped"] >= 1 and report["versions"]["keras"]
    assert Path(report["paths"]["html"]).exists()
