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
               "latency_ms": {"batch1_p50": 1.0}, "model": {"params": 10, "size_mb": 1.5},
               "budget": {"allowed": {"minutes": 6}, "trials_run": 1}, "timings": {"search_s": 3.0, "total_s": 90.0},
               "baseline": {"name": "logistic regression on 32 px pixels", "accuracy": 0.25},
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
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1280,900", url],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    from PIL import Image

    first_screen = np.asarray(Image.open(shot).convert("HSV"))  # what a reader sees before scrolling
    coloured = int(np.sum((first_screen[..., 1] > 100) & (first_screen[..., 2] < 240)))
    assert coloured > 2000, "no picture (the confusion heatmap) on the first screen"
    dialogs = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True,
                             timeout=120).stdout.count("<script")
    assert dialogs == 0


def test_fit_report_has_context(trained_run):
    report = trained_run.report
    assert report["backbone"] == "tiny_resnet" and report["latency_ms"]["batch1_p50"] > 0
    assert report["model"]["params"] > 0 and report["model"]["size_mb"] > 0
    assert report["audit"]["num_skipped"] >= 1 and report["versions"]["keras"]
    low, high = report["accuracy_interval"]
    assert low <= report["accuracy"] <= high and 0.0 <= report["baseline"]["accuracy"] <= 1.0
    assert report["baseline"]["name"] == "logistic regression on 32 px pixels"
    assert Path(report["paths"]["html"]).exists()


def test_the_accuracy_interval_is_wilsons_and_brackets_the_accuracy(evil_report):
    from resnet_automl.report.headline import accuracy_interval

    low, high = accuracy_interval(43, 48)
    assert low == pytest.approx(0.778, abs=0.002) and high == pytest.approx(0.955, abs=0.002)
    assert accuracy_interval(0, 0) is None and accuracy_interval(10, 10)[1] == 1.0
    report = evil_report[0]
    assert report["accuracy_interval"][0] <= report["accuracy"] <= report["accuracy_interval"][1]
    assert report["baseline"]["accuracy"] == 0.25


def test_the_pixel_baseline_learns_from_small_pixels():
    from resnet_automl.report.headline import pixel_baseline, small_pixels

    for size, side in ((64, 32), (28, 28), (48, 24), (224, 32), (32, 32)):
        rows, small = small_pixels(np.zeros((2, size, size, 3), np.uint8), 32)
        assert small == side and rows.shape == (2, side * side * 3)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    images = np.clip(rng.normal(60.0 * labels[:, None, None, None] + 40, 20, (120, 64, 64, 3)), 0, 255).astype(np.uint8)
    result = pixel_baseline(images[:90], labels[:90], images[90:], labels[90:])
    assert result["accuracy"] > 0.9 and result["side"] == 32 and result["train_images"] == 90
    assert pixel_baseline(images[:5], np.zeros(5), images[90:], labels[90:]) is None  # one class: nothing to learn


def test_the_page_opens_with_the_headline_then_pictures_and_no_cell_dumps_a_dict(evil_report):
    import re

    folder = evil_report[3]
    page = (folder / "report.html").read_text()
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings[0] == "Headline" and page.index("<img") < page.index("<h2>Per class</h2>")
    headline = page[page.index("<h2>Headline</h2>"):page.index("<img")]
    assert "95% interval" in headline and "logistic regression on 32 px pixels" in headline and "1.5" in headline
    cells = re.findall(r"<td>(.*?)</td>", page)
    assert cells and not [c for c in cells if re.search(r"\w=\S", c) or c.startswith("{")], "a dict in a cell"
    assert "budget, allowed, minutes" in page and "timings, search (s)" in page and "size (MB)" in page
    markdown = (folder / "report.md").read_text()
    assert markdown.index("## Headline") < markdown.index("![") < markdown.index("## Per class")
