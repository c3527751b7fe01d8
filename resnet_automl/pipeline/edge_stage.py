"""The export stage's other formats: LiteRT (float32, int8) and ONNX, each checked on the test split.

Runs after the SavedModel passed its check. Each format's check result is kept in run.json under
`exports`; a rerun writes only the formats that are asked for and not yet passed. A file that fails
its check is moved to `DIR/rejected/` and the run ends with `ExportCheckError` once the report is
written (the other formats stay in place).
"""
from __future__ import annotations

import logging
import shutil
import time

import numpy as np

from resnet_automl.errors import ExportCheckError
from resnet_automl.pipeline.context import RunContext, RunData
from resnet_automl.pipeline.run_dir import move_to_rejected
from resnet_automl.runtime import device
from resnet_automl.serving.edge.formats import EDGE_EXTRA_FIX, clean_partial_formats, edge_formats, format_dir
from resnet_automl.serving.edge.verify import verify_edge_format

logger = logging.getLogger(__name__)

#: Training images the int8 converter calibrates on (evenly spaced over the training split).
CALIBRATION_IMAGES = 300
#: Test images each format is checked on (the first ones of the test split); the whole split when smaller.
CHECK_LIMIT = 1000


def calibration_pixels(data: RunData, limit: int = CALIBRATION_IMAGES) -> np.ndarray:
    """uint8 pixels of up to `limit` training images, evenly spaced over the split (never test images)."""
    train = data.images("train")
    index = np.unique(np.linspace(0, len(train) - 1, num=min(limit, len(train))).round().astype(int))
    return np.asarray(train[index], dtype=np.uint8)


def _write(ctx: RunContext, data: RunData, final, names: list) -> dict | None:
    """Write `names` under DIR/exports on this process's or a child's TensorFlow; None without TensorFlow."""
    calibration = calibration_pixels(data) if "litert-int8" in names else None
    if device.backend() == "tensorflow":
        from resnet_automl.serving.edge.export import write_formats

        return write_formats(final.model, data.splits.class_names, ctx.out, names, image_size=data.image_size,
                             calibration=calibration, thresholds=final.thresholds)
    if device.tensorflow_available():
        from resnet_automl.serving.savedmodel.tensorflow_process import formats_in_tensorflow_process

        return formats_in_tensorflow_process(ctx.layout.final_weights, ctx.out, names,
                                             calibration=calibration, log_path=ctx.layout.export_log)
    ctx.note(f"TensorFlow is not installed on this machine, so the {', '.join(names)} files were not written; "
             f"run `resnet-automl export {ctx.out} --format {','.join(names)}` where it is.")
    return None


def _reject(ctx: RunContext, name: str, check: dict) -> str:
    """Move a format that failed its check to DIR/rejected/ and return the sentence that says why."""
    target = move_to_rejected(ctx.out, format_dir(ctx.out, name), name)
    if "error" in check:
        cause = f"its runtime could not run it ({check['error']})"
    elif check.get("criterion", "").startswith("max"):
        cause = f"its probabilities differ from the trained model's by up to {check['max_abs_diff']:.3g}"
    else:
        cause = (f"its test accuracy {check['accuracy']:.4f} is below the trained model's "
                 f"{check['reference_accuracy']:.4f} by more than allowed")
    criterion = check.get("criterion", "a fresh-process run")
    return f"The {name} export failed its check ({criterion}): {cause}; moved to {target}."


def pending_formats(ctx: RunContext) -> list:
    """Names of the formats of `ctx.opts.export_formats` besides the SavedModel not yet written and passed."""
    results = ctx.record.exports
    return [fmt.name for fmt in edge_formats(ctx.opts.export_formats)
            if not (results.get(fmt.name) or {}).get("passed")]


def discard_unchecked(ctx: RunContext, written: dict) -> None:
    """Remove format folders written with a SavedModel that then failed its own check (never checked)."""
    for name in written:
        shutil.rmtree(format_dir(ctx.out, name), ignore_errors=True)


def export_formats(ctx: RunContext, data: RunData, final, written: dict | None = None) -> ExportCheckError | None:
    """Write and check the formats of `ctx.opts.export_formats` besides the SavedModel that are not done yet.

    `final` is the final stage's `FinalModel` (its model and thresholds); `written` (format name ->
    file) are those a TensorFlow child already wrote with the SavedModel. Returns the
    `ExportCheckError` to raise once the report is written when a format failed its check.
    """
    results = dict(ctx.record.exports)
    todo = edge_formats(pending_formats(ctx))
    if not todo:
        return None
    started = time.time()
    written = dict(written or {})
    missing = [fmt.name for fmt in todo if fmt.name not in written]
    if missing:
        clean_partial_formats(ctx.out)
        new = _write(ctx, data, final, missing)
        if new is None:
            return None
        written.update(new)
    limit = min(CHECK_LIMIT, len(data.labels["test"]))
    pixels, labels = np.asarray(data.images("test")[:limit]), data.labels["test"][:limit]
    reference = data.predictions(final.model, "test")[:limit]  # the report reads the same
    failures, score = [], data.splits.task.score_name
    for fmt in todo:
        check = verify_edge_format(fmt, written[fmt.name], pixels, labels, reference, data.splits.task)
        results[fmt.name] = check
        logger.info(f"[export] {fmt.name}: {check['size_mb']:.1f} MB, fresh-process check "
                    f"{'passed' if check['passed'] else 'FAILED'} ({score} {check.get('accuracy', float('nan')):.4f}, "
                    f"max |diff| {check.get('max_abs_diff', float('nan')):.2e} on {check['images']} test images)")
        if not check["passed"]:
            failures.append(_reject(ctx, fmt.name, check))
    ctx.record.update(exports=results)
    ctx.timed("export_formats_s", started)
    if failures:
        return ExportCheckError(" ".join(failures) + " The other formats are in place. Rerun the same command to "
                                f"export again; if it fails again, drop the format or report it (runtimes: "
                                f"`{EDGE_EXTRA_FIX}`).")
    return None


def deployment_rows(ctx: RunContext, accuracy: float, version_dir, savedmodel_mb: float | None) -> list:
    """The report's Deployment table: the SavedModel's check, then each other format's, from run.json.

    `accuracy` is the Keras model's test accuracy; `version_dir` (or None) the SavedModel's folder.
    """
    rows = []
    check = ctx.record.export
    if check and version_dir is not None:
        rows.append({"format": "savedmodel", "file": str(version_dir), "size_mb": savedmodel_mb,
                     "images": check.get("images"), "input_dtype": "string (encoded image bytes)",
                     "accuracy": round(accuracy, 4), "reference_accuracy": round(accuracy, 4),
                     "max_abs_diff": check.get("max_abs_diff"), "top1_agreement": None,
                     "latency_ms": check.get("latency_ms"), "passed": check.get("passed"),
                     "criterion": f"max |probability difference| <= {check.get('tolerance', 1e-4):g} "
                                  f"on {check.get('images')} test images; accuracy is the Keras model's"})
    exports = ctx.record.exports
    rows += [{**exports[fmt.name], "file": str(format_dir(ctx.out, fmt.name) / fmt.file)}
             for fmt in edge_formats(ctx.opts.export_formats) if fmt.name in exports]
    return rows


def export_files(ctx: RunContext) -> dict:
    """Format name -> the file of each format of this run that passed its check (under this run folder)."""
    exports = ctx.record.exports
    return {fmt.name: str(format_dir(ctx.out, fmt.name) / fmt.file) for fmt in edge_formats(ctx.opts.export_formats)
            if (exports.get(fmt.name) or {}).get("passed")}
