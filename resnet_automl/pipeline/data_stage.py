"""The data stage of `fit`: audit and split the dataset, choose the image size, plan the training."""
from __future__ import annotations

import logging
import time

from resnet_automl.data import ManifestColumns, prepare_data
from resnet_automl.pipeline.context import RunContext, RunData
from resnet_automl.planning.image_size import auto_image_size
from resnet_automl.planning.training_plan import TrainingPlan, plan_training

logger = logging.getLogger(__name__)


def describe_audit(audit: dict, num_classes: int) -> str:
    """One sentence on the audited dataset: images per split, classes, skipped files, imbalance.

    Example: "[data] 300 images in 4 classes (210 train, 45 val, 45 test), none skipped".
    """
    sizes = audit["num_images"]
    split = ", ".join(f"{count} {name}" for name, count in sizes.items())
    skipped = audit.get("num_skipped", 0)
    skipped_text = f"{skipped} file{'s' if skipped != 1 else ''} skipped (see the report)" if skipped \
        else "none skipped"
    imbalance = (f"; imbalanced: the largest class has {audit['imbalance_ratio']:.1f}x the images of the "
                 "smallest, so classes are weighted") if audit.get("imbalanced") else ""
    kind = (f"{num_classes} labels, multi-label: {audit['label_cardinality']:.2f} per image"
            if audit.get("multilabel") else f"{num_classes} classes")
    return f"[data] {sum(sizes.values())} images in {kind} ({split}), {skipped_text}{imbalance}"


def prepare(ctx: RunContext) -> tuple[RunData, TrainingPlan]:
    """Audit and split the data (or reload the run's split) and plan trials and final training.

    Returns the `RunData` (its images decode on first use) and the `TrainingPlan`; both are
    recorded in run.json by the chief (or a single process).
    """
    started, opts = time.time(), ctx.opts
    splits = prepare_data(ctx.data, ctx.out, seed=opts.seed, val_fraction=opts.val_fraction,
                          test_fraction=opts.test_fraction, columns=ManifestColumns(**opts.manifest_columns()),
                          keep_split=opts.keep_split)
    audit = splits.audit
    logger.info(describe_audit(audit, splits.num_classes))
    image_size = (opts.image_size or ctx.record.image_size or ctx.source.image_size
                  or auto_image_size(splits, ctx.setup.kind != "cpu", pretrained=ctx.source.pretrained))
    data = RunData(splits, image_size, ctx.layout.cache_dir, opts.seed, ctx.batch_size)
    plan = plan_training(splits, opts, ctx.budget, batch_size=ctx.batch_size, pretrained=ctx.source.pretrained)
    if ctx.role != "worker":
        setup = ctx.setup
        ctx.record.update(task=splits.task, image_size=image_size, batch_size=ctx.batch_size, epochs=plan.epochs,
                          final_epochs=plan.final_epochs, final_uses_val=plan.final_uses_val,
                          bn_momentum=plan.bn_momentum, max_trials=plan.max_trials, device=setup.kind,
                          device_setup={"description": setup.description, "backend": setup.backend,
                                        "precision": setup.precision, "replicas": setup.replicas})
    ctx.timed("data_s", started)
    return data, plan
