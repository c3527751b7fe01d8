"""The stages of `fit` in order, each recorded in run.json so a rerun skips what is done.

    data -> selection -> search -> final training -> export -> report

Each stage is a function of the `RunContext` and what the stages before it returned.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import keras

from resnet_automl.errors import ResNetAutoMLError
from resnet_automl.pipeline import (
    data_stage,
    edge_stage,
    export_stage,
    final_stage,
    report_stage,
    search_stage,
    selection_stage,
)
from resnet_automl.pipeline.clock import Clock
from resnet_automl.pipeline.context import RunContext, RunData
from resnet_automl.pipeline.result import FitResult
from resnet_automl.pipeline.run_dir import distributed_role, versions
from resnet_automl.runtime import compile_cache, device, interrupts, quiet
from resnet_automl.runtime.backend import module_installed
from resnet_automl.runtime.progress import on_terminal
from resnet_automl.runtime.run_folder import RunLayout
from resnet_automl.runtime.run_record import RunRecord
from resnet_automl.runtime.seeding import seed_everything
from resnet_automl.weights.io import classifier_metadata
from resnet_automl.weights.source import WeightsSource

logger = logging.getLogger(__name__)

#: Seconds a distributed worker waits for the chief to write the split and the backbone selection.
CHIEF_WAIT_S = 3600.0
#: Images per batch and device when `batch_size` is not given.
BATCH_PER_DEVICE = 32


def _wait_for_chief(out: Path, timeout_s: float = CHIEF_WAIT_S) -> RunRecord:
    """A worker waits until the chief has written the split and the backbone selection."""
    logger.info("[worker] waiting for the chief to write the data split and the backbone selection")
    deadline, layout = time.time() + timeout_s, RunLayout(out)
    while time.time() < deadline:
        record = RunRecord.read(layout.run_file) if layout.run_file.exists() else None
        if record is not None and record.chosen_backbones and layout.split_file.exists():
            return record
        time.sleep(2)
    raise ResNetAutoMLError(f"No chief wrote {layout.run_file} within {timeout_s:.0f} s. Start the chief with the "
                            "same --out folder (shared by every machine), then the workers.")


def start_run(data, out: Path, opts, budget, clock: Clock, *, source: WeightsSource, verbose: int,
              recipe=None) -> RunContext:
    """The `RunContext` of one fit: run.json opened (or awaited from the chief), the device set up."""
    role = distributed_role()
    if role == "worker":
        record = _wait_for_chief(out)
    else:
        record = RunRecord.open(out)
        record.update(data=str(data), recipe=None if recipe is None else str(recipe), options=opts.to_dict(),
                      budget=budget.to_dict(), versions=versions(), role=role, pretrained=source.describe())
    with quiet.filtered_native_stderr():  # the first device query prints CUDA probing lines
        setup = device.configure(opts.precision)
    compile_cache.enable_compilation_cache(RunLayout(out).xla_cache_dir)  # `run_pipeline` undoes this
    if setup.kind == "cpu" and setup.backend == "tensorflow" and not source.pretrained and module_installed("jax"):
        logger.info("[device] training from random initialisation on TensorFlow: JAX trains these networks 1.5-2x "
                    "faster on a CPU; set KERAS_BACKEND=jax before Keras is imported (`resnet-automl fit` does)")
    seed_everything(opts.seed)
    return RunContext(data=data, out=out, opts=opts, budget=budget, clock=clock, source=source, record=record,
                      role=role, setup=setup, verbose=verbose,
                      live=verbose == 1 and on_terminal(),  # verbose 2 shows Keras' own bars instead
                      batch_size=opts.batch_size or BATCH_PER_DEVICE * setup.replicas,
                      timings=dict(record.timings), notes=list(record.notes))


def weights_metadata(ctx: RunContext, data: RunData, best_values: dict) -> dict:
    """The description stored with the final weights (what a later export or transfer reads)."""
    return classifier_metadata(best_values["backbone"], num_classes=data.splits.num_classes,
                               class_names=data.splits.class_names, image_size=data.image_size,
                               trainable_stages=best_values["trainable_stages"], run_dir=str(ctx.out.resolve()),
                               task=data.splits.task)


def _result_paths(layout: RunLayout, version_dir: Path | None, report: dict, exports: dict) -> dict:
    return {"run_dir": str(layout.root), "run_json": str(layout.run_file), "model_dir": str(layout.model_dir),
            "version_dir": None if version_dir is None else str(version_dir),
            "exports": exports,
            "report_html": report["paths"]["html"], "report_json": report["paths"]["json"],
            "report_md": report["paths"]["markdown"]}


def _stages(ctx: RunContext) -> FitResult:
    data, plan = data_stage.prepare(ctx)
    choice = selection_stage.select(ctx, data, plan)
    search = search_stage.search(ctx, data, plan, choice)
    if search.best_trial is None:  # a distributed worker: the chief trains, exports and reports
        return search_stage.worker_result(ctx, data, choice, search.tuner)
    interrupts.check()
    final = final_stage.train(ctx, data, plan, choice, search, weights_metadata(ctx, data, search.best_values))
    interrupts.check()
    version_dir, export_error = export_stage.export(ctx, data, final)
    interrupts.check()
    report = report_stage.report(ctx, data, final, version_dir=version_dir,
                                 search=search, objective=plan.objective,
                                 warnings=[str(export_error)] if export_error else [])
    if export_error is not None:
        raise export_error
    return FitResult(model=final.model, class_names=data.splits.class_names, backbone=search.best_values["backbone"],
                     best_hyperparameters=search.best_values, trials=search.trials, history=final.history,
                     selection=ctx.record.selection, report=report,
                     paths=_result_paths(ctx.layout, version_dir, report, edge_stage.export_files(ctx)))


def run_pipeline(data, out: Path, opts, budget, clock: Clock, *, source: WeightsSource, verbose: int = 1,
                 recipe=None) -> FitResult:
    """Run every stage of a fit in `out` (see `resnet_automl.pipeline.fit.fit`).

    The global Keras dtype policy and JAX's compilation-cache settings are restored when it returns.
    """
    policy = keras.mixed_precision.global_policy().name
    try:
        ctx = start_run(data, out, opts, budget, clock, source=source, verbose=verbose, recipe=recipe)
        return _stages(ctx)
    finally:  # DIR/cache/xla is gone once the report is written; the caller's later compiles are not the run's
        compile_cache.disable_compilation_cache()
        keras.mixed_precision.set_global_policy(policy)
