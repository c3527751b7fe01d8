"""`FitResult`: what `fit` returns."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FitResult:
    """What `fit` returns.

    Attributes:
        model: the trained `keras.Model` (pixels 0..255 in, probabilities out), or None in a
            distributed worker.
        class_names: list of str.
        backbone: str, the backbone of the final model.
        best_hyperparameters: dict (backbone, trainable_stages, learning_rate).
        trials: list of dicts (hyperparameters, score, seconds, status).
        history: dict of per-epoch metrics of the final training.
        selection: list of dicts, the backbone selection table.
        report: dict, the content of report.json.
        paths: dict of str: run_dir, run_json, model_dir, version_dir (None when no SavedModel
            could be written: no TensorFlow on this machine), report_html, report_json, report_md.
    """

    model: object
    class_names: list
    backbone: str
    best_hyperparameters: dict
    trials: list = field(default_factory=list)
    history: dict = field(default_factory=dict)
    selection: list = field(default_factory=list)
    report: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return self.report.get("accuracy")
