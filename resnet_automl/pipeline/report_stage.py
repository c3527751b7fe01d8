"""The report stage of `fit`: the final model evaluated on the held-out test split."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from resnet_automl.pipeline import edge_stage
from resnet_automl.pipeline.context import RunContext, RunData
from resnet_automl.pipeline.final_stage import FinalModel
from resnet_automl.pipeline.run_dir import versions
from resnet_automl.pipeline.search_stage import SearchOutcome
from resnet_automl.planning.probe import measure_latency
from resnet_automl.report.build import build_report, headline
from resnet_automl.report.headline import pixel_baseline
from resnet_automl.training.metrics import validation_score

logger = logging.getLogger(__name__)


def folder_mb(path: Path | None) -> float | None:
    """Size in MiB of the files under `path` (None for None)."""
    if path is None:
        return None
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 3)


def report(ctx: RunContext, data: RunData, final: FinalModel, *, version_dir: Path | None,
           search: SearchOutcome, objective: str, warnings: list = ()) -> dict:
    """Evaluate the final stage's model on the test split and write report.json, report.md and report.html.

    `final` is the `FinalModel` (model, history, thresholds); `search` gives the best hyperparameters
    and the trials table; `objective` (str) the search's objective; `warnings` (list of str) are
    shown at the top of the report (a failed export check).
    """
    started, model, history = time.time(), final.model, final.history
    best_values, trials = search.best_values, search.trials
    probabilities = data.predictions(model, "test")
    metric = data.splits.task.score_metric
    accuracy = validation_score(probabilities, data.labels["test"], metric) if len(probabilities) else 0.0
    latency = measure_latency(model, data.image_size, batch32=True)
    baseline = None if data.splits.task.multilabel else pixel_baseline(
        data.images("train"), data.labels["train"], data.images("test"), data.labels["test"])
    context = {
        "backbone": best_values["backbone"], "hyperparameters": best_values, "trials": trials,
        "selection": ctx.record.selection, "latency_ms": latency,
        "model": {"params": int(model.count_params()), "size_mb": folder_mb(version_dir),
                  "image_size": data.image_size, "version_dir": None if version_dir is None else str(version_dir)},
        "budget": {"allowed": ctx.budget.to_dict(), "trials_run": len(trials),
                   "used_minutes_this_call": round(ctx.clock.elapsed() / 60.0, 3)},
        "timings": ctx.timings, "audit": data.audit, "export": ctx.record.export,
        "deployment": edge_stage.deployment_rows(ctx, accuracy, version_dir, folder_mb(version_dir)),
        "versions": versions(), "history": history, "notes": ctx.notes + [f"Objective: {objective}."],
        "pretrained": ctx.source.describe(), "warnings": list(warnings),
        "threshold_table": final.threshold_table, "baseline": baseline,
    }
    result = build_report(probabilities, data.splits.test, data.splits.class_names, context, ctx.layout.report_dir,
                          model_card=True, thresholds=final.thresholds)
    if version_dir is not None:  # the card travels with the model folder handed to TF Serving
        shutil.copyfile(result["paths"]["model_card"], version_dir.parent / "model_card.md")
    ctx.timed("report_s", started)
    # every split decoded this call, the test split above included, is data time as well
    ctx.timings["data_s"] = round(ctx.timings.get("data_s", 0) + data.decode_seconds, 2)
    ctx.timings["total_s"] = round(sum(v for k, v in ctx.timings.items() if k != "total_s"), 2)
    if warnings:  # the run is not finished: a rerun exports again, and reports again
        ctx.record.update(timings=ctx.timings)
    else:
        ctx.record.mark_done("report", timings=ctx.timings, latency_ms=latency, test_accuracy=result["accuracy"],
                             test_balanced_accuracy=result.get("balanced_accuracy"), test_map=result.get("map"))
        shutil.rmtree(ctx.layout.cache_dir, ignore_errors=True)  # decoded images and features: a rerun needs none
    logger.info(f"[report] {headline(result)}: {result['paths']['html']}")
    return result
