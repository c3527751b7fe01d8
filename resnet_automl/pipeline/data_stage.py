"""The data stage of `fit`: audit and split the dataset, choose the image size, plan the training."""
from __future__ import annotations

import logging
import math
import time

from resnet_automl.data import ManifestColumns, auto_image_size, prepare_data
from resnet_automl.modeling.classifier import suggested_bn_momentum
from resnet_automl.pipeline.context import RunContext, RunData, TrainingPlan
from resnet_automl.planning.schedule import default_epochs, default_final_epochs, default_trials

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
                          test_fraction=opts.test_fraction, columns=ManifestColumns(**opts.manifest_columns()))
    audit = splits.audit
    logger.info(describe_audit(audit, splits.num_classes))
    image_size = (opts.image_size or ctx.record.image_size or ctx.source.image_size
                  or auto_image_size(splits, ctx.setup.kind != "cpu", pretrained=ctx.source.pretrained))
    data = RunData(splits, image_size, ctx.layout.cache_dir, opts.seed, ctx.batch_size)
    plan = plan_training(ctx, len(splits.train), len(splits.val), imbalanced=bool(audit["imbalanced"]),
                         class_weight=splits.class_weights() if audit["imbalanced"] else None,
                         multilabel=splits.multilabel, positive_weights=splits.positive_weights())
    if ctx.role != "worker":
        setup = ctx.setup
        ctx.record.update(task=splits.task, image_size=image_size, batch_size=ctx.batch_size, epochs=plan.epochs,
                          final_epochs=plan.final_epochs, final_uses_val=plan.final_uses_val,
                          bn_momentum=plan.bn_momentum, max_trials=plan.max_trials, device=setup.kind,
                          device_setup={"description": setup.description, "backend": setup.backend,
                                        "precision": setup.precision, "replicas": setup.replicas})
    ctx.timed("data_s", started)
    return data, plan


def plan_training(ctx: RunContext, train_images: int, val_images: int, *, imbalanced: bool,
                  class_weight: dict | None, multilabel: bool = False,
                  positive_weights: list | None = None) -> TrainingPlan:
    """The `TrainingPlan` for `train_images` and `val_images` under the run's options and budget; a
    `multilabel` dataset is searched by validation mAP, with `positive_weights` (list of float or
    None) in its loss."""
    opts, batch_size = ctx.opts, ctx.batch_size
    steps = max(1, math.ceil(train_images / batch_size))
    epochs = opts.epochs or default_epochs(steps)
    final_uses_val = opts.final_uses_val(train_images, multilabel)
    final_images = train_images + (val_images if final_uses_val else 0)
    final_steps = max(1, math.ceil(final_images / batch_size))
    final_epochs = opts.final_epochs or default_final_epochs(epochs, final_steps, ctx.source.pretrained,
                                                             epochs_chosen=opts.epochs is not None)
    return TrainingPlan(
        steps=steps, epochs=epochs, final_epochs=final_epochs, final_uses_val=final_uses_val,
        bn_momentum=suggested_bn_momentum(epochs * steps),
        max_trials=ctx.budget.max_trials or default_trials(len(opts.stage_choices()), opts.backbones_named(),
                                                          pretrained=ctx.source.pretrained),
        objective="val_map" if multilabel else "val_balanced_accuracy" if imbalanced else "val_accuracy",
        class_weight=None if multilabel else class_weight, multilabel=multilabel,
        positive_weights=tuple(positive_weights) if positive_weights else None,
        train_images=train_images, val_images=val_images, batch_size=batch_size)
