"""The evaluation report: report.json (schema in docs/report-schema.md), report.md and a self-contained
report.html with embedded PNG plots. Every string from the user's data is escaped."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from resnet_automl.report import plots
from resnet_automl.report.headline import accuracy_interval
from resnet_automl.report.model_card import render_model_card
from resnet_automl.report.multilabel import multilabel_report, multilabel_sections
from resnet_automl.runtime.files import write_json_atomic, write_text_atomic
from resnet_automl.training.metrics import classification_metrics

SCHEMA_VERSION = 1
GALLERY_SIZE = 12


def most_confident_mistakes(probabilities, labels, items, class_names, limit=GALLERY_SIZE) -> list:
    """The `limit` wrong predictions with the highest confidence: path, true, predicted, score."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.where(predicted != np.asarray(labels))[0]
    ranked = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:limit]
    return [{"path": str(items[i][0]), "true": class_names[labels[i]], "predicted": class_names[predicted[i]],
             "score": float(probabilities[i, predicted[i]])} for i in ranked]


def single_label_report(probabilities, items, class_names, out: Path) -> tuple[dict, dict]:
    """(report entries, pictures) of a single-label model on the test `items`: `classification_metrics`,
    the most confident mistakes, and the confusion matrix, reliability and gallery PNGs in `out`."""
    labels = [int(label) for _, label in items]
    report = classification_metrics(probabilities, labels, class_names)
    report["mistakes"] = most_confident_mistakes(probabilities, labels, items, class_names)
    pictures = {
        "confusion_matrix": plots.confusion_matrix_plot(report["confusion_matrix"], class_names,
                                                        out / "confusion_matrix.png"),
        "reliability": plots.reliability_plot(report["calibration_bins"], report["ece"], out / "reliability.png"),
        "mistakes": plots.mistakes_gallery(report["mistakes"], out / "mistakes.png"),
    }
    return report, pictures


def headline(report: dict) -> str:
    """The report's main numbers in one phrase, e.g. "test accuracy 0.9500, balanced 0.9440" (str)."""
    if report.get("task") == "multilabel":
        return (f"test mAP {report['map']:.4f}, micro F1 {report['micro_f1']:.4f}, "
                f"subset accuracy {report['accuracy']:.4f}")
    interval = report.get("accuracy_interval")
    around = f" (95% interval {interval[0]:.3f}-{interval[1]:.3f})" if interval else ""
    return f"test accuracy {report['accuracy']:.4f}{around}, balanced {report['balanced_accuracy']:.4f}"


def build_report(probabilities, items, class_names, context: dict, out_dir, *, model_card: bool = False,
                 thresholds: list | None = None) -> dict:
    """Compute metrics, draw the plots and write report.json, report.md and report.html (and, with
    `model_card`, model_card.md: `report.model_card.render_model_card`).

    Args:
        probabilities: array [N, C] of the model on the test images.
        items: list of (path, label) of the test images (never used for tuning).
        class_names: list of str.
        context: dict with any of: backbone, hyperparameters, trials, selection, latency_ms, model,
            budget, timings, audit, export, deployment (one row per exported format: format, size_mb,
            accuracy, max_abs_diff, latency_ms, passed...), versions, history, notes, warnings
            (sentences shown at the top of the report: a failed export check, say), baseline
            ({name, accuracy}: a sanity baseline scored on the same test images, `headline.pixel_baseline`).
        out_dir: folder to write into (created).
        model_card: bool, also write the model card (a fit's report; an evaluation has no training
            to describe). Defaults to False.
        thresholds: list of float, a multi-label model's per-label thresholds (its `items` then hold
            tuples of label indices; `context["threshold_table"]` may say how they were chosen).
            Defaults to None (single-label).
    Returns the report dict (as written to report.json) with "paths" added.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if thresholds is None:
        metrics, pictures = single_label_report(probabilities, items, class_names, out)
        metrics = {"task": "multiclass", **metrics}
    else:
        metrics, pictures = multilabel_report(probabilities, items, class_names, thresholds, out,
                                              context.get("threshold_table"))
    report = {"schema_version": SCHEMA_VERSION, "class_names": list(class_names), **metrics}
    tested = int(report.get("num_test_images") or 0)
    report["accuracy_interval"] = accuracy_interval(round(report.get("accuracy", 0.0) * tested), tested)
    for key in ("backbone", "hyperparameters", "pretrained", "trials", "selection", "latency_ms", "model", "budget",
                "timings", "audit", "export", "deployment", "versions", "notes", "warnings", "baseline"):
        report[key] = context.get(key)
    if (context.get("history") or {}).get("loss"):  # none when the head is a linear probe (no epochs)
        pictures["training_curves"] = plots.training_curves_plot(context["history"], out / "training_curves.png")
    report["plots"] = {name: path.name for name, path in pictures.items()}
    report["paths"] = {"json": str(out / "report.json"), "markdown": str(out / "report.md"),
                       "html": str(out / "report.html")}
    if model_card:
        report["paths"]["model_card"] = str(out / "model_card.md")
        write_text_atomic(out / "model_card.md", render_model_card(report))
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.md", render_markdown(report))
    write_text_atomic(out / "report.html", render_html(report, out))
    return report


# ----------------------------------------------------------------------------------- rendering


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):  # a row per figure is the rule (`_facts`); a dict left over reads as words
        return "; ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


#: Units named after a figure by the ending of its key.
UNITS = {"_ms": "ms", "_s": "s", "_mb": "MB", "_minutes": "min", "_gflops": "GFLOPs"}


def _label(key: str) -> str:
    """A key as a row's name with its unit: "batch1_p50_ms" -> "batch1 p50 (ms)"."""
    for ending, unit in UNITS.items():
        if key.endswith(ending):
            return f"{key[:-len(ending)].replace('_', ' ')} ({unit})"
    return key.replace("_", " ")


def _facts(name: str, value) -> list:
    """[name, value] rows of `value` with nested dicts flattened into one row per figure."""
    if isinstance(value, dict):
        return [row for key, item in value.items() for row in _facts(f"{name}, {_label(str(key))}".strip(", "), item)]
    return [[name, value]]


def _with_interval(accuracy, interval) -> str:
    if accuracy is None:
        return "-"
    if not interval:
        return f"{accuracy:.4f}"
    return f"{accuracy:.4f} (95% interval {interval[0]:.3f} to {interval[1]:.3f})"


def _headline(report: dict) -> tuple:
    """The first table a reader sees: the score with its 95% interval, the test images, the backbone,
    the time taken and the baseline measured in the same run."""
    multilabel = report.get("task") == "multilabel"
    rows = [["test mAP", report.get("map")], ["micro F1", report.get("micro_f1")]] if multilabel else []
    rows.append(["subset accuracy (every label right)" if multilabel else "test accuracy",
                 _with_interval(report.get("accuracy"), report.get("accuracy_interval"))])
    if not multilabel:
        rows.append(["balanced accuracy", report.get("balanced_accuracy")])
    rows.append(["test images (never used for tuning)", report.get("num_test_images")])
    if report.get("backbone"):
        rows.append(["backbone", report["backbone"]])
    total = (report.get("timings") or {}).get("total_s")
    if total is not None:
        rows.append(["time taken (min)", round(total / 60.0, 1)])
    baseline = report.get("baseline")
    if baseline:
        rows.append([f"baseline: {baseline['name']}, same train and test images", baseline["accuracy"]])
    return ("Headline", ["figure", "value"], rows)


def _sections(report: dict) -> list:
    """The report as (title, header, rows) tables; shared by Markdown and HTML. The headline comes
    first (after any warning); the pages put the pictures right after it."""
    sections = [("Warnings", ["warning"], [[w] for w in report["warnings"]])] if report.get("warnings") else []
    sections.append(_headline(report))
    sections += multilabel_sections(report) if report.get("task") == "multilabel" else _single_label_sections(report)
    if report.get("hyperparameters"):
        sections.append(("Hyperparameters", ["hyperparameter", "value"],
                         [[name, value] for name, value in report["hyperparameters"].items()]))
    names = report["class_names"]
    sections += _dataset_sections(report.get("audit") or {}, names)
    sections += _run_sections(report)
    return sections


def _single_label_sections(report: dict) -> list:
    """Summary, per-class and confusion-matrix tables of a single-label report."""
    sections = [("Summary", ["metric", "value"], [
        ["test images", report["num_test_images"]], ["accuracy", report["accuracy"]],
        ["balanced accuracy", report["balanced_accuracy"]],
        [f"top-{report['top_k']} accuracy", report["top_k_accuracy"]],
        ["macro F1", report["averages"]["macro"]["f1"]], ["weighted F1", report["averages"]["weighted"]["f1"]],
        ["ROC-AUC (one-vs-rest)", report["roc_auc_ovr"]], ["log loss", report["log_loss"]],
        ["expected calibration error", report["ece"]]])]
    sections.append(("Per class", ["class", "precision", "recall", "F1", "support"],
                     [[name, m["precision"], m["recall"], m["f1"], m["support"]]
                      for name, m in report["per_class"].items()]))
    names = report["class_names"]
    sections.append(("Confusion matrix (rows: true, columns: predicted)", ["true \\ predicted", *names],
                     [[name, *row] for name, row in zip(names, report["confusion_matrix"], strict=True)]))
    return sections


def _dataset_sections(audit: dict, names: list) -> list:
    """The dataset's counts, audit and skipped files (none for an evaluation without an audit)."""
    sections = []
    if audit:
        counts = audit.get("counts", {})
        sections.append(("Dataset", ["class", *counts.keys()],
                         [[name, *(counts[s].get(name, 0) for s in counts)] for name in names]))
        sections.append(("Dataset audit", ["item", "value"], [
            ["source", audit.get("source")], ["layout", audit.get("layout")],
            ["skipped files", audit.get("num_skipped")], ["duplicate groups", len(audit.get("duplicates", []))],
            ["duplicates across splits", len(audit.get("cross_split_duplicates", []))],
            ["imbalance ratio (largest / smallest class)", audit.get("imbalance_ratio")],
            *([["labels per image", audit.get("label_cardinality")],
               ["distinct label sets (train)", audit.get("label_combinations")],
               *[[f"positive weight, {names[i]} (used when imbalanced)", w]
                 for i, w in enumerate(audit.get("positive_weights") or []) if i < len(names)]]
              if audit.get("multilabel") else
              [[f"class weight, {names[int(i)]}", w] for i, w in (audit.get("class_weights") or {}).items()
               if int(i) < len(names)])]))
        if audit.get("skipped"):
            sections.append(("Skipped files", ["file", "reason"],
                             [[s["path"], s["reason"]] for s in audit["skipped"][:200]]))
    return sections


def _run_sections(report: dict) -> list:
    """Selection, trials, deployment, model/budget/export facts and notes."""
    sections = []
    if report.get("selection"):
        sections.append(("Backbone selection", ["candidate", "params", "GFLOPs", "probe img/s", "latency ms",
                                                "est. minutes", "verdict", "reason"],
                         [[r["name"], r.get("params"), r.get("gflops"), r.get("probe_images_per_s"),
                           r.get("latency_ms"), r.get("estimated_minutes"), r.get("verdict"), r.get("reason")]
                          for r in report["selection"]]))
    if report.get("trials"):
        searched = list(dict.fromkeys(k for t in report["trials"] for k in t["hyperparameters"]))
        sections.append(("Trials", ["trial", *searched, "score", "seconds", "status", "note"],
                         [[t["trial_id"], *(t["hyperparameters"].get(k) for k in searched), t["score"], t["seconds"],
                           t["status"], t.get("message", "")] for t in report["trials"]]))
    if report.get("deployment"):
        multilabel = report.get("task") == "multilabel"
        sections.append(("Deployment", ["format", "file", "MB", "test mAP" if multilabel else "test accuracy",
                                        "max |diff| vs Keras", "decisions agree" if multilabel else "top-1 agreement",
                                        "latency p50 ms", "latency p95 ms", "check"],
                         [[d["format"], d.get("file"), d.get("size_mb"), d.get("accuracy"), d.get("max_abs_diff"),
                           d.get("top1_agreement"), (d.get("latency_ms") or {}).get("p50"),
                           (d.get("latency_ms") or {}).get("p95"),
                           ("passed" if d.get("passed") else "FAILED") + f" ({d.get('criterion', '')})"]
                          for d in report["deployment"]]))
    rows = [row for key in ("pretrained", "latency_ms", "model", "budget", "timings", "export", "versions")
            if report.get(key) is not None for row in _facts(_label(key), report[key])]
    if rows:
        sections.append(("Model, budget and export", ["figure", "value"], rows))
    if report.get("notes"):
        sections.append(("Notes", ["note"], [[n] for n in report["notes"]]))
    return sections


def _md_cell(value) -> str:
    """A table cell: text as it reads, with only what Markdown would act on escaped (backslashes,
    pipes, and `<`, which would start raw HTML); HTML entity escaping belongs to the HTML page."""
    text = _fmt(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<")
    return text.replace("\r", " ").replace("\n", " ")


def render_markdown(report: dict) -> str:
    """The report as GitHub-flavoured Markdown (`<`, `|` and backslashes in user strings escaped):
    the headline, the pictures, then the tables."""
    lines = ["# Evaluation report", ""]
    for title, header, rows in _sections(report):
        lines += [f"## {title}", "", "| " + " | ".join(_md_cell(h) for h in header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
        if title == "Headline":
            lines += [f"![{name}]({file})" for name, file in report.get("plots", {}).items()] + [""]
    return "\n".join(lines) + "\n"


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(_fmt(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_pictures(report: dict, folder: Path) -> str:
    """The plots side by side (wrapping), each with its name, embedded as data URIs."""
    figures = []
    for name, file in report.get("plots", {}).items():
        data = base64.b64encode((folder / file).read_bytes()).decode("ascii")
        figures.append(f"<figure><img alt=\"{html.escape(name)}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{html.escape(name.replace('_', ' '))}</figcaption></figure>")
    return f"<div class=\"pictures\">{''.join(figures)}</div>" if figures else ""


def render_html(report: dict, folder: Path) -> str:
    """A self-contained page: no scripts, no external resources, plots embedded as data URIs."""
    parts = []
    for title, header, rows in _sections(report):
        parts.append(f"<h2>{html.escape(title)}</h2>{_html_table(header, rows)}")
        if title == "Headline":  # the pictures come right after the headline, the detailed tables after them
            parts.append(_html_pictures(report, folder))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
             "margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;"
             "font-size:14px;vertical-align:top}th{background:#f0f0f0}img{max-width:100%}"
             ".pictures{display:flex;flex-wrap:wrap;gap:12px}.pictures figure{margin:0;flex:1 1 360px;max-width:560px}"
             "figcaption{font-size:13px;color:#444}")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\"><title>resnet-automl evaluation report</title>"
            f"<style>{style}</style></head><body><h1>Evaluation report</h1>{''.join(parts)}</body></html>\n")
