"""The model card: what a model is for, the data it saw, how well it did and what a reader must know.

Rendered from the report dict (`report.build.build_report`, schema in docs/report-schema.md) as
Markdown, in the sections of Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019) that a
run can fill from what it measured: model details, intended use, training data, evaluation,
metrics per class and calibration, deployment checks, limitations. Every string from the user's
data (class names, paths) is escaped for Markdown tables.
"""
from __future__ import annotations

from pathlib import Path

from resnet_automl.runtime.run_folder import THRESHOLDS_FILE

#: Below this many test images per class, the card warns that per-class metrics are coarse.
SMALL_TEST_PER_CLASS = 30
#: Above this expected calibration error the card says the scores are not probabilities to trust.
ECE_WARNING = 0.05


def _cell(value) -> str:
    """A Markdown table cell: pipes and line breaks escaped, floats to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list, rows: list) -> list:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _details(report: dict) -> list:
    model = report.get("model") or {}
    source = report.get("pretrained") or {}
    start = {"imagenet": "ImageNet weights", "run": f"the run {source.get('path')}",
             "file": f"the weights file {source.get('path')}"}.get(source.get("kind"), "random initialisation")
    hyper = report.get("hyperparameters") or {}
    budget = (report.get("budget") or {}).get("allowed") or {}
    limits = ", ".join(f"{k}={v}" for k, v in budget.items() if v is not None) or "none"
    return ["## Model details", "",
            f"- Architecture: {_cell(report.get('backbone'))} classifier, {_cell(model.get('params'))} parameters, "
            f"input resized to {_cell(model.get('image_size'))} x {_cell(model.get('image_size'))} px inside the "
            "graph (any image size in).",
            f"- Started from {start}; trainable stages {_cell(hyper.get('trainable_stages'))}, learning rate "
            f"{_cell(hyper.get('learning_rate'))}.",
            f"- Chosen by a Keras Tuner search of {len(report.get('trials') or [])} trial(s) under the budget: "
            f"{limits}.",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in (report.get("versions") or {}).items()) + ".", ""]


def _intended_use(report: dict) -> list:
    names = report.get("class_names") or []
    if report.get("task") == "multilabel":
        return ["## Intended use", "",
                f"Says which of {len(names)} labels an image has (any number of them, maybe none): "
                + ", ".join(_cell(n) for n in names) + ".",
                "Each label has its own probability and threshold; an image of anything else may still get "
                "labels. Use it on images like the training images.", ""]
    return ["## Intended use", "",
            f"Assigns one of {len(names)} labels to an image: " + ", ".join(_cell(n) for n in names) + ".",
            "Every input gets one of these labels: an image of anything else still gets one, with a score "
            "that need not be low. Use it on images like the training images.", ""]


def _training_data(report: dict) -> list:
    audit = report.get("audit") or {}
    counts = audit.get("counts") or {}
    names = report.get("class_names") or []
    splits = [s for s in ("train", "val", "test") if s in counts]
    rows = [[name, *[(counts[s] or {}).get(name, 0) for s in splits]] for name in names]
    lines = ["## Training data", "", f"Source: {_cell(audit.get('source'))} ({_cell(audit.get('layout'))}).", ""]
    lines += _table(["class", *splits], rows) + [""]
    skipped = audit.get("skipped") or []
    if skipped:
        lines.append(f"{len(skipped)} file(s) skipped by the audit (listed in report.json, `audit.skipped`).")
    if audit.get("duplicates") or audit.get("cross_split_duplicates"):
        lines.append(f"Duplicates: {len(audit.get('duplicates') or [])} within splits, "
                     f"{len(audit.get('cross_split_duplicates') or [])} across splits (see the report).")
    if audit.get("imbalanced") and audit.get("multilabel"):
        lines.append(f"Imbalanced labels (most / least frequent = {_cell(audit.get('imbalance_ratio'))}): the loss "
                     "weighs each label's positive images by its negatives / positives.")
    elif audit.get("imbalanced"):
        lines.append(f"Imbalanced classes (largest / smallest = {_cell(audit.get('imbalance_ratio'))}): trained with "
                     "class weights; the search maximised balanced accuracy.")
    return lines + [""]


def _multilabel_evaluation(report: dict) -> list:
    per_class = report.get("per_class") or {}
    lines = ["## Evaluation", "",
             f"Multi-label: each label has its own probability, and it is predicted when that probability reaches "
             f"the label's threshold (chosen on the validation split to maximise F1; `assets/{THRESHOLDS_FILE}`). On "
             f"the held-out test split ({report.get('num_test_images')} images, never used for training or tuning): "
             f"mean average precision {_cell(report.get('map'))}, micro F1 {_cell(report.get('micro_f1'))}, macro F1 "
             f"{_cell(report.get('macro_f1'))}, subset accuracy (every label of an image right) "
             f"{_cell(report.get('accuracy'))}, Hamming loss {_cell(report.get('hamming_loss'))}.", ""]
    rows = [[name, m.get("threshold"), m.get("precision"), m.get("recall"), m.get("f1"), m.get("ap"), m.get("support")]
            for name, m in per_class.items()]
    return lines + _table(["label", "threshold", "precision", "recall", "F1", "AP", "test images"], rows) + [""]


def _evaluation(report: dict) -> list:
    if report.get("task") == "multilabel":
        return _multilabel_evaluation(report)
    per_class = report.get("per_class") or {}
    interval = report.get("accuracy_interval")
    around = f" (95% interval {interval[0]:.3f} to {interval[1]:.3f}, Wilson)" if interval else ""
    baseline = report.get("baseline")
    beside = (f" A {baseline['name']}, trained on the same training images, scores {baseline['accuracy']:.4f} on "
              "the same test images." if baseline else "")
    lines = ["## Evaluation", "",
             f"On the held-out test split ({report.get('num_test_images')} images, never used for training or "
             f"tuning): accuracy {_cell(report.get('accuracy'))}{around}, balanced accuracy "
             f"{_cell(report.get('balanced_accuracy'))}, top-{report.get('top_k')} accuracy "
             f"{_cell(report.get('top_k_accuracy'))}, expected calibration error {_cell(report.get('ece'))} "
             f"(10 bins), log loss {_cell(report.get('log_loss'))}.{beside}", ""]
    rows = [[name, m.get("precision"), m.get("recall"), m.get("f1"), m.get("support")] for name, m in per_class.items()]
    return lines + _table(["class", "precision", "recall", "F1", "test images"], rows) + [""]


def _deployment(report: dict) -> list:
    export = report.get("export") or {}
    latency = report.get("latency_ms") or {}
    lines = ["## Deployment", ""]
    if export:
        verdict = "passed" if export.get("passed") else "FAILED"
        lines.append(f"- TensorFlow SavedModel (TF Serving; signatures {', '.join(export.get('signatures') or [])}): "
                     f"checked in a fresh process on {export.get('images')} images, {verdict} (largest difference "
                     f"from the trained model {_cell(export.get('max_abs_diff'))}, tolerance "
                     f"{_cell(export.get('tolerance'))}).")
    else:
        lines.append("- Not exported in this run (no SavedModel check).")
    for row in report.get("deployment") or []:
        if row["format"] == "savedmodel":
            continue
        verdict = "passed" if row.get("passed") else "FAILED"
        lines.append(f"- {row['format']} (`{Path(row['file']).name}`, {_cell(row.get('size_mb'))} MB, input "
                     f"{row.get('input_dtype')} pixels): checked in a fresh process on {row.get('images')} test "
                     f"images, {verdict}: accuracy {_cell(row.get('accuracy'))} (Keras model "
                     f"{_cell(row.get('reference_accuracy'))}), largest probability difference "
                     f"{_cell(row.get('max_abs_diff'))}; criterion: {row.get('criterion')}.")
    if latency:
        lines.append(f"- Latency on the training machine: batch 1 p50 {_cell(latency.get('batch1_p50'))} ms, p95 "
                     f"{_cell(latency.get('batch1_p95'))} ms.")
    return lines + [""]


def _limitations(report: dict) -> list:
    names = report.get("class_names") or []
    support = [m.get("support") or 0 for m in (report.get("per_class") or {}).values()]
    items = (["Only the labels above exist for the model; an image with none of them gets no label, or a wrong one."]
             if report.get("task") == "multilabel" else
             ["Only the labels above exist for the model; it cannot say \"none of these\"."])
    if support and min(support) < SMALL_TEST_PER_CLASS:
        items.append(f"The test split is small ({min(support)} image(s) for the rarest class): per-class metrics move "
                     "in coarse steps and a second split could differ by several points.")
    ece = report.get("ece")
    if ece is not None and ece > ECE_WARNING:
        items.append(f"Scores are not calibrated probabilities (expected calibration error {ece:.3f}); do not "
                     "threshold them as such without checking on your own data.")
    size = (report.get("model") or {}).get("image_size")
    if size:
        items.append(f"Images are resized to {size} x {size} px: details smaller than what survives that resize "
                     "are invisible to the model.")
    if len(names) and report.get("accuracy") is not None and report["accuracy"] < 1.0:
        worst = min((report.get("per_class") or {}).items(), key=lambda kv: kv[1].get("recall", 1.0), default=None)
        if worst is not None:
            name, recall = _cell(worst[0]), _cell(worst[1].get("recall"))
            items.append(f"Weakest class on the test split: {name} (recall {recall}).")
    items += [f"Warning from the run: {_cell(note)}" for note in report.get("warnings") or []]
    return ["## Limitations", "", *[f"- {item}" for item in items], ""]


def _notes(report: dict) -> list:
    notes = report.get("notes") or []
    return ["## How it was trained", "", *[f"- {_cell(note)}" for note in notes], ""] if notes else []


def render_model_card(report: dict) -> str:
    """The model card (Markdown str) of the report dict `report`."""
    names = report.get("class_names") or []
    kind = f"{len(names)} labels, multi-label" if report.get("task") == "multilabel" else f"{len(names)} classes"
    title = f"# Model card: {_cell(report.get('backbone'))} image classifier ({kind})"
    sections = [[title, ""], _details(report), _intended_use(report), _training_data(report), _evaluation(report),
                _notes(report), _deployment(report), _limitations(report)]
    return "\n".join(line for section in sections for line in section)
