"""The export stage of `fit`: the TF Serving SavedModel, checked in a fresh process.

A SavedModel whose check fails never stays where TF Serving loads it: it is moved to
`DIR/rejected/`, the stage stays undone (a rerun of the same command exports again from the final
weights), and the run ends with `ExportCheckError` after writing the report, which says so at the top.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from resnet_automl.data.images import SERVABLE_EXTENSIONS
from resnet_automl.errors import ExportCheckError
from resnet_automl.pipeline import edge_stage
from resnet_automl.pipeline.context import RunContext, RunData
from resnet_automl.pipeline.final_stage import FinalModel
from resnet_automl.pipeline.run_dir import move_to_rejected
from resnet_automl.runtime import device
from resnet_automl.serving.savedmodel.layout import clean_partial_exports, versions_made_from
from resnet_automl.serving.savedmodel.verify import verify_export

logger = logging.getLogger(__name__)

#: Test images the fresh-process check serves (and the first few go into the warm-up file).
CHECK_IMAGES = 16
WARMUP_IMAGES = 3


def servable_images(items: list, limit: int) -> list:
    """Up to `limit` paths of `items` ((path, label) pairs) with an ending the serving graph decodes."""
    return [path for path, _ in items if Path(path).suffix.lower() in SERVABLE_EXTENSIONS][:limit]


def _write_saved_model(ctx: RunContext, data: RunData, final: FinalModel, samples: list) -> tuple[Path | None, dict]:
    """Write the next version under DIR/model on this process's or a child's TensorFlow; return (its
    folder, or None without TensorFlow; the LiteRT/ONNX files a child wrote from the same model)."""
    layout, common = ctx.layout, {"model_name": ctx.out.resolve().name}
    if device.backend() == "tensorflow":
        from resnet_automl.serving.savedmodel.export import export_serving_model

        return export_serving_model(final.model, data.splits.class_names, layout.model_dir, image_size=data.image_size,
                                    warmup_images=[Path(p).read_bytes() for p in samples[:WARMUP_IMAGES]],
                                    thresholds=final.thresholds, weights_sha256=final.weights_sha256,
                                    **common), {}
    if device.tensorflow_available():
        from resnet_automl.serving.savedmodel.tensorflow_process import export_in_tensorflow_process

        pending = edge_stage.pending_formats(ctx)  # one TensorFlow child writes them all
        logger.info(f"[export] {device.backend()} backend: the SavedModel{' and ' if pending else ''}"
                    f"{', '.join(pending)} are written by a TensorFlow process from the final weights")
        return export_in_tensorflow_process(
            layout.final_weights, layout.model_dir, warmup_paths=samples[:WARMUP_IMAGES],
            log_path=layout.export_log, formats=pending,
            calibration=edge_stage.calibration_pixels(data) if "litert-int8" in pending else None, **common)
    note = ("TensorFlow is not installed on this machine, so no SavedModel was written. The final "
            f"weights are in {layout.final_weights}; on a machine with TensorFlow "
            f"and the same dataset path, run `resnet-automl export {ctx.out}` to write and check it.")
    ctx.note(note)
    logger.info(f"[export] skipped: {note}")
    return None, {}


def _unrecorded_version(ctx: RunContext, weights_sha256: str | None) -> Path | None:
    """A complete version of this run's final weights that a killed export renamed into place but
    never recorded (`layout.PROVENANCE_FILE`): adopted, and checked like a new one, instead of a second
    version of the same model. None when there is none (or no weights file: `weights_sha256` None)."""
    if weights_sha256 is None:
        return None
    found = versions_made_from(ctx.layout.model_dir, weights_sha256)
    if not found:
        return None
    logger.info(f"[export] {found[-1]}: a version of these final weights that an interrupted run did not record; "
                "checking it instead of exporting again")
    return found[-1]


def _reject(ctx: RunContext, version_dir: Path, check: dict) -> ExportCheckError:
    """Move a SavedModel that failed its check out of DIR/model and say what to do."""
    target = move_to_rejected(ctx.out, version_dir, f"model-{version_dir.name}")
    if "error" in check:
        cause = f"the fresh TensorFlow process could not serve it ({' '.join(check['error'])})"
    else:
        cause = (f"its probabilities differ from the trained model's by up to {check['max_abs_diff']:.3g} "
                 f"(tolerance {check['tolerance']:g}) on {check['images']} test images")
    message = (f"The exported SavedModel failed its check: {cause}. It was moved to {target}, so TF Serving "
               f"will not load it from {ctx.layout.model_dir}. Rerun the same command to export again from the "
               f"final weights in {ctx.layout.final_dir}; if it fails again, report it with {target}.")
    ctx.record.update(export=check, export_rejected=str(target))
    return ExportCheckError(message)


def export(ctx: RunContext, data: RunData, final: FinalModel) -> tuple[Path | None, ExportCheckError | None]:
    """Write and check the SavedModel (or reuse the run's), then the other formats asked for; return
    (version folder, error).

    The version folder is None when no SavedModel could be written (no TensorFlow here) or when
    it failed its check; the error is then the `ExportCheckError` to raise once the report is written
    (also when another format failed its check: `edge_stage.export_formats`).
    """
    if ctx.record.stage_done("export"):  # the version under this run folder, wherever it was when exported
        version_dir = ctx.layout.version_dir(ctx.record.version_dir)
        return version_dir, edge_stage.export_formats(ctx, data, final)
    started = time.time()
    clean_partial_exports(ctx.layout.model_dir)
    samples = servable_images(data.splits.test, CHECK_IMAGES)
    version_dir, written = _unrecorded_version(ctx, final.weights_sha256), {}
    if version_dir is None:
        version_dir, written = _write_saved_model(ctx, data, final, samples)
    if version_dir is None:
        return None, edge_stage.export_formats(ctx, data, final)
    check = verify_export(version_dir, lambda pixels: final.model.predict(pixels, verbose=0), samples,
                          data.image_size)
    logger.info(f"[export] {version_dir}: fresh-process check {'passed' if check['passed'] else 'FAILED'} "
                f"(max |diff| {check.get('max_abs_diff', float('nan')):.2e} on {check['images']} images)")
    ctx.timed("export_s", started)
    if not check["passed"]:
        edge_stage.discard_unchecked(ctx, written)  # a rerun writes them again with the SavedModel
        return None, _reject(ctx, version_dir, check)
    ctx.record.mark_done("export", export=check, version_dir=str(version_dir), export_rejected=None)
    return version_dir, edge_stage.export_formats(ctx, data, final, written=written)
