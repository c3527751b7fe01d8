"""The selection stage of `fit`: the backbone(s) that fit the budget, and the time estimates from it."""
from __future__ import annotations

import logging
import time

from resnet_automl.backbones import get_spec
from resnet_automl.pipeline.context import BackboneChoice, RunContext, RunData
from resnet_automl.planning import ranges
from resnet_automl.planning.probe import ProbeCache
from resnet_automl.planning.schedule import selection_plan
from resnet_automl.planning.selection import export_and_report_seconds, select_backbones
from resnet_automl.planning.training_plan import TrainingPlan
from resnet_automl.runtime import device
from resnet_automl.weights.imagenet_keras import keras_weights_file
from resnet_automl.weights.imagenet_torchvision import ensure_converted_weights
from resnet_automl.weights.source import backbone_for

logger = logging.getLogger(__name__)


def _check_weights(names: list, source) -> None:
    """Make sure ImageNet weights of every chosen backbone are here (downloading them if needed),
    before any training: offline, fit stops with the file, URL, cache folder and alternatives."""
    if source.kind != "imagenet":
        return
    for name in names:
        if get_spec(name).layout == "keras":
            keras_weights_file(name)
        else:
            ensure_converted_weights(name)


def select(ctx: RunContext, data: RunData, plan: TrainingPlan) -> BackboneChoice:
    """Choose the backbone(s) (or reuse the run's choice) and estimate the time of what follows."""
    started, record = time.time(), ctx.record
    work = plan.work(trainable_stages=max(ranges.stage_choices(ctx.opts)), augment=not ctx.source.pretrained,
                     edge_formats=len(ctx.opts.export_formats) - 1)
    if record.selection is None:
        source_backbone = backbone_for(ctx.source, ctx.opts.backbone)  # a run or file fixes the backbone
        selection = select_backbones(
            source_backbone or ctx.opts.backbone, ctx.budget, image_size=data.image_size, weights=ctx.source.kind,
            plan=selection_plan(work, time_budget=ctx.clock.deadline is not None,
                                final_epochs_chosen=bool(ctx.opts.final_epochs), pretrained=ctx.source.pretrained),
            probe_cache=ProbeCache(ctx.layout.probe_file))
        if source_backbone is not None:
            for row in selection.table:
                row["reason"] = f"the backbone of the pretrained source {ctx.source.path}; {row['reason']}"
            selection.summary = f"chose {source_backbone}: the backbone of the pretrained source {ctx.source.path}"
        record.update(selection=selection.table, chosen_backbones=selection.chosen,
                      selection_summary=selection.summary)
        ctx.timed("selection_s", started)
    for row in record.selection:
        logger.info(f"[selection]   {row['name']:<17} {row['params']:>11,} params {row['gflops']:>8.3g} GFLOPs  "
                    f"{row['verdict']}: {row['reason']}")
    logger.info(f"[selection] {record.selection_summary}")
    chosen = record.chosen_backbones
    _check_weights(chosen, ctx.source)
    estimate = next((r for r in record.selection if r["name"] == chosen[0]), {})
    ips = estimate.get("probe_images_per_s")
    first_step_s = estimate.get("probe_first_step_s") or 0.0
    return BackboneChoice(
        chosen=chosen,
        epoch_s=work.trial_epoch_seconds(ips) if ips else None,
        first_step_s=first_step_s,
        final_reserve=work.final_seconds(first_step_s, ips) if ips else 0.0,
        # one trial as the probe times it: the estimate from random initialisation holds the whole final
        # training, so its share per trial would count several trials' worth
        trial_estimate_s=work.trial_seconds(first_step_s, ips) if ips else 0.0,
        reserve=export_and_report_seconds(chosen[0], device.backend(), work.edge_formats))
