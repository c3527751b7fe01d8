"""Choose the backbone(s) that fit a `Budget`, and say why for every candidate.

Hard constraints (parameters, GFLOPs at the chosen image size, batch-1 latency measured here)
exclude candidates. Among the rest, the preferred order is the published ImageNet top-1 when
ImageNet weights are used; from random initialisation on small data (< 5,000 training images)
the smaller network comes first, since capacity then hurts more than it helps. With a time
budget each candidate in that order is probed on this device (a few training steps) and the
first whose estimated total time fits is chosen; if none fits, the cheapest is chosen and the
table says so. From random initialisation the estimate holds the whole planned final training
(`schedule.selection_plan`: 2,000 optimiser steps), so on a machine too slow for ResNet-20 to get
them, the next in order, `resnet20_lean` (288 more parameters, a quarter of the FLOPs), is probed
and chosen instead of a ResNet-20 that would train too briefly. On small data the plan also names
the final epochs a candidate should get (`Plan.preferred_final_epochs`, 200 from random
initialisation): one that fits the budget with fewer is kept as the fallback (verdict "fits") while
the next in order is probed, since on ten Fashion-MNIST classes the lean net's 250 epochs beat the
full ResNet-20's 133 and 158 in the same six minutes.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from resnet_automl.backbones import REGISTRY, get_spec
from resnet_automl.config.budget import Budget
from resnet_automl.config.options import backbone_names
from resnet_automl.errors import ConfigError
from resnet_automl.planning.probe import ProbeCache, latency_of, probe_training
from resnet_automl.planning.ranges import SMALL_DATA_IMAGES
from resnet_automl.runtime import device

logger = logging.getLogger(__name__)

#: Largest image side at which "auto" considers the CIFAR-style nets (their stem keeps full resolution).
CIFAR_STEM_MAX_SIZE = 64

#: Extra seconds of an export that runs in a TensorFlow child process (every backend but TensorFlow):
#: TensorFlow's import and the model rebuilt there. resnet20_lean on fm10-100: export 25.6 s from JAX
#: against 15 s on TensorFlow (2 cores).
EXPORT_CHILD_PROCESS_S = 15.0
#: Seconds of one LiteRT/ONNX format (conversion and its fresh-process check), plus per million
#: parameters: the demo (resnet20_lean, 0.27 M parameters, JAX) exported in 64 s with litert,
#: litert-int8 and onnx (written by the SavedModel's TensorFlow child) against 32 s without them.
EDGE_FORMAT_S, EDGE_FORMAT_S_PER_MPARAM = 10.0, 0.5


def export_and_report_seconds(backbone: str, backend: str = "tensorflow", edge_formats: int = 0) -> float:
    """Seconds set aside for export (with the fresh-process check) and the report.

    Measured here: 9 s export + 2 s report for ResNet-18 at 32 px; tracing grows with depth, so
    20 s plus 0.5 s per million parameters, plus `EXPORT_CHILD_PROCESS_S` when `backend` (str,
    the Keras backend; default "tensorflow") is not TensorFlow; and for each of `edge_formats`
    (int, LiteRT/ONNX files asked for; default 0) `EDGE_FORMAT_S` plus `EDGE_FORMAT_S_PER_MPARAM`
    per million parameters.
    """
    params_m = get_spec(backbone).params / 1e6
    child = 0.0 if backend == "tensorflow" else EXPORT_CHILD_PROCESS_S
    return 20.0 + 0.5 * params_m + child + edge_formats * (EDGE_FORMAT_S + EDGE_FORMAT_S_PER_MPARAM * params_m)


@dataclass
class Plan:
    """The work a fit will do, used to turn a throughput into minutes.

    Attributes:
        trials: int, tuner trials.
        epochs: int, epochs per trial.
        final_epochs: int, epochs of the final training (plus one epoch of margin).
        train_images, val_images: ints, images per epoch for training and validation.
        final_uses_val: bool, the final training also learns from the val images. Default False.
        trainable_stages: int, the most expensive freeze setting the search will try.
        batch_size: int.
        augment: bool, training runs behind the augmentation layers (probed that way). Default False.
        preferred_final_epochs: int or None, final epochs a candidate should get in the time budget to
            be chosen outright; one that fits the plan with fewer is kept as the fallback and the next
            in order is probed (`select_backbones`). Default None: fitting the plan is enough.
        edge_formats: int, LiteRT/ONNX files the export writes besides the SavedModel. Default 0.
    """

    trials: int
    epochs: int
    final_epochs: int
    train_images: int
    val_images: int
    trainable_stages: int
    batch_size: int
    final_uses_val: bool = False
    augment: bool = False
    preferred_final_epochs: int | None = None
    edge_formats: int = 0

    def trial_epoch_seconds(self, images_per_s: float) -> float:
        """Seconds of one search epoch: training, plus validation at ~3x the training speed."""
        return self.train_images / images_per_s + self.val_images / (3.0 * images_per_s)

    def trial_seconds(self, first_step_s: float, images_per_s: float) -> float:
        """Seconds of one search trial: a graph build and `epochs` search epochs."""
        return first_step_s + self.epochs * self.trial_epoch_seconds(images_per_s)

    def final_seconds(self, first_step_s: float, images_per_s: float) -> float:
        """Seconds of the final training: two graph builds, `final_epochs` + 1 epochs."""
        if self.final_uses_val:
            epoch = (self.train_images + self.val_images) / images_per_s
        else:
            epoch = self.trial_epoch_seconds(images_per_s)
        return 2 * first_step_s + (self.final_epochs + 1) * epoch

    def seconds(self, first_step_s: float, images_per_s: float, backbone: str) -> float:
        """Estimated seconds of search + final training + export + report."""
        search = self.trials * self.trial_seconds(first_step_s, images_per_s)
        return (search + self.final_seconds(first_step_s, images_per_s)
                + export_and_report_seconds(backbone, device.backend(), self.edge_formats))

    def final_epochs_within(self, seconds: float, first_step_s: float, images_per_s: float, backbone: str) -> int:
        """Final epochs that `seconds` (float, the whole fit's budget) holds after the search, the
        export and the report, as `final_seconds` counts them (never below 0)."""
        one_epoch = dataclasses.replace(self, final_epochs=0)
        per_epoch = one_epoch.final_seconds(0.0, images_per_s)  # final_epochs + 1 = 1 epoch
        spare = seconds - one_epoch.seconds(first_step_s, images_per_s, backbone)
        return max(0, int(spare / per_epoch))


@dataclass
class Selection:
    """Result of `select_backbones`: the chosen names, one row per candidate, and a summary."""

    chosen: list
    table: list = field(default_factory=list)
    summary: str = ""


def _candidate_names(requested) -> list:
    if requested is None or requested == "auto":
        return [name for name, spec in REGISTRY.items() if not spec.test_only]
    names = backbone_names(requested)
    if not names:
        raise ConfigError("The `backbone` argument is empty. Pass 'auto', a name or a list of names.")
    return [get_spec(name).name for name in names]


def _as_costly(row: dict, other: dict) -> bool:
    """`row` has at least the parameters and the GFLOPs of `other` (selection table rows)."""
    return row["params"] >= other["params"] and row["gflops"] >= other["gflops"]


def _preference(names: list, weights, train_images: int) -> list:
    specs = [get_spec(n) for n in names]
    if weights != "imagenet" and train_images < SMALL_DATA_IMAGES:
        return [s.name for s in sorted(specs, key=lambda s: (s.params, s.gflops_224))]
    return [s.name for s in sorted(specs, key=lambda s: -(s.imagenet_top1 or 0.0))]


def _constraint_verdict(row: dict, budget: Budget, *, auto: bool, weights, image_size: int,
                        probe_cache: ProbeCache) -> bool:
    """Apply the hard constraints to one candidate's `row` (verdict and reason when excluded).

    Returns True when the candidate passes every constraint of `budget`.
    """
    spec = get_spec(row["name"])
    if auto and weights == "imagenet" and not spec.has_imagenet_weights:
        row.update(verdict="excluded", reason="no ImageNet weights (use weights=None)")
    elif auto and spec.stem == "cifar" and image_size > CIFAR_STEM_MAX_SIZE:
        row.update(verdict="excluded",
                   reason=f"CIFAR-style stem (no downsampling) is for images up to {CIFAR_STEM_MAX_SIZE} px")
    elif budget.max_params is not None and spec.params > budget.max_params:
        row.update(verdict="excluded", reason=f"{spec.params:,} parameters > max_params {budget.max_params:,}")
    elif budget.max_gflops is not None and row["gflops"] > budget.max_gflops:
        row.update(verdict="excluded",
                   reason=f"{row['gflops']:.3g} GFLOPs at {image_size} px > max_gflops {budget.max_gflops:g}")
    elif budget.max_latency_ms is not None:
        name = row["name"]
        latency = probe_cache.get_or_measure(f"latency|{name}|{image_size}",
                                             lambda: latency_of(name, image_size=image_size))
        row["latency_ms"] = latency["batch1_p50"]
        if latency["batch1_p50"] > budget.max_latency_ms:
            row.update(verdict="excluded", reason=(f"batch-1 latency {latency['batch1_p50']:.1f} ms > "
                                                   f"max_latency_ms {budget.max_latency_ms:g}"))
    return row["verdict"] != "excluded"


def _skip_reason(row: dict, passing: list, short: list, budget: Budget, plan: Plan) -> tuple | None:
    """(verdict, reason) for a candidate that need not be probed, or None when it must be."""
    cheaper = next((r for r in passing if r["verdict"] == "over budget" and r["estimated_minutes"] is not None
                    and _as_costly(row, r)), None)
    if cheaper is not None:  # a probe costs time the budget no longer has; it could only say "over" again
        return "over budget", (f"not probed: at least as costly as {cheaper['name']} (parameters and GFLOPs), "
                               f"estimated {cheaper['estimated_minutes']:.1f} min > budget {budget.minutes:g} min")
    shorter = next((r for r in short if _as_costly(row, r)), None)
    if shorter is not None:  # it could only train fewer epochs than the fallback already found
        return "not probed", (f"at least as costly as {shorter['name']} (parameters and GFLOPs), which gets "
                              f"fewer than {plan.preferred_final_epochs} final epochs")
    return None


def _probe_verdict(row: dict, budget: Budget, plan: Plan, *, image_size: int, several: bool,
                   probe_cache: ProbeCache) -> str:
    """Probe one candidate on this device and set its estimate and verdict.

    Returns "chosen", "short" (fits, but with fewer final epochs than preferred) or "over".
    """
    name = row["name"]
    probe = probe_cache.get_or_measure(
        f"train|{name}|{image_size}|{plan.trainable_stages}|{plan.batch_size}|augment={plan.augment}",
        lambda: probe_training(name, image_size=image_size, trainable_stages=plan.trainable_stages,
                               batch_size=plan.batch_size, augment=plan.augment))
    minutes = plan.seconds(probe["first_step_s"], probe["images_per_s"], name) / 60.0
    row.update(probe_images_per_s=probe["images_per_s"], probe_first_step_s=probe["first_step_s"],
               estimated_minutes=round(minutes, 2))
    logger.info(f"[selection] {name}: {probe['images_per_s']:.1f} img/s training, "
                f"estimated {minutes:.1f} min for the whole fit")
    epochs = plan.final_epochs_within(budget.seconds, probe["first_step_s"], probe["images_per_s"], name)
    row["estimated_final_epochs"] = epochs
    too_short = not several and plan.preferred_final_epochs is not None and epochs < plan.preferred_final_epochs
    if minutes > budget.minutes:
        row.update(verdict="over budget", reason=f"estimated {minutes:.1f} min > budget {budget.minutes:g} min")
        return "over"
    if too_short:
        row.update(verdict="fits", reason=(
            f"estimated {minutes:.1f} min <= budget {budget.minutes:g} min, but only about {epochs} final "
            f"epochs (< {plan.preferred_final_epochs} preferred from random initialisation): the next "
            "candidate is probed, in case it trains longer"))
        return "short"
    row.update(verdict="chosen", reason=f"estimated {minutes:.1f} min <= budget {budget.minutes:g} min"
                                        f" (about {epochs} final epochs)")
    return "chosen"


def _choose_without_time_budget(passing: list, several: bool) -> list:
    chosen = []
    for row in passing:
        if chosen and not several:
            row.update(verdict="fits", reason="a preferred candidate was chosen")
        else:
            row.update(verdict="chosen", reason="best-ranked candidate within the constraints (no time budget)")
            chosen.append(row["name"])
    return chosen


def _choose_within_time_budget(passing: list, budget: Budget, plan: Plan, *, image_size: int, several: bool,
                               probe_cache: ProbeCache) -> list:
    chosen, short = [], []  # short: probed rows that fit only with too few final epochs; the first is the fallback
    for row in passing:
        if chosen and not several:
            row.update(verdict="not probed", reason="a preferred candidate fits the time budget")
            continue
        skip = _skip_reason(row, passing, short, budget, plan)
        if skip is not None:
            row.update(verdict=skip[0], reason=skip[1])
            continue
        outcome = _probe_verdict(row, budget, plan, image_size=image_size, several=several,
                                 probe_cache=probe_cache)
        if outcome == "chosen":
            chosen.append(row["name"])
        elif outcome == "short":
            short.append(row)
    if not chosen and short:
        fallback = short[0]
        fallback.update(verdict="chosen", reason=(
            f"estimated {fallback['estimated_minutes']:.1f} min <= budget {budget.minutes:g} min (about "
            f"{fallback['estimated_final_epochs']} final epochs; no candidate gets {plan.preferred_final_epochs})"))
        chosen = [fallback["name"]]
    if not chosen:
        cheapest = min((r for r in passing if r["estimated_minutes"] is not None),
                       key=lambda r: r["estimated_minutes"])
        cheapest.update(verdict="chosen (over budget)",
                        reason=f"no candidate fits {budget.minutes:g} min; this is the cheapest "
                               f"({cheapest['estimated_minutes']:.1f} min): the search will be cut short")
        chosen = [cheapest["name"]]
    return chosen


def select_backbones(requested, budget: Budget, *, image_size: int, weights, plan: Plan,
                     probe_cache: ProbeCache | None = None) -> Selection:
    """Filter and rank candidates; return the `Selection`.

    Args:
        requested: "auto", a name, a comma-separated string or a list of names. A list keeps every
            candidate that fits (the tuner then searches over them).
        budget: the `Budget`.
        image_size: int, input side in pixels (GFLOPs and probes use it).
        weights: the kind of starting weights: "imagenet", "none", "run" or "file" (a
            `WeightsSource.kind`); with "imagenet", "auto" only considers backbones that have ImageNet
            weights, and from random initialisation on small data smaller networks come first.
        plan: the `Plan` of work, for time estimates.
        probe_cache: where probe and latency results are cached. Defaults to none (in memory).
    """
    probe_cache = probe_cache or ProbeCache(None)
    auto = requested is None or requested == "auto"
    names = _preference(_candidate_names(requested), weights, plan.train_images)
    several = not auto and len(names) > 1
    rows = []
    for name in names:
        spec = get_spec(name)
        rows.append({"name": name, "params": spec.params, "gflops": round(spec.gflops(image_size), 4),
                     "imagenet_top1": spec.imagenet_top1, "probe_images_per_s": None, "latency_ms": None,
                     "estimated_minutes": None, "estimated_final_epochs": None, "verdict": "", "reason": ""})
    passing = [row for row in rows if _constraint_verdict(row, budget, auto=auto, weights=weights,
                                                          image_size=image_size, probe_cache=probe_cache)]
    if not passing:
        reasons = "; ".join(f"{r['name']}: {r['reason']}" for r in rows)
        raise ConfigError(f"No backbone satisfies the budget ({reasons}). Loosen max_params, max_gflops or "
                          "max_latency_ms, lower the image size, or name another backbone.")
    if budget.seconds is None:
        chosen = _choose_without_time_budget(passing, several)
    else:
        chosen = _choose_within_time_budget(passing, budget, plan, image_size=image_size, several=several,
                                            probe_cache=probe_cache)
    summary = (f"chose {', '.join(chosen)}: " + next(r["reason"] for r in rows if r["name"] == chosen[0]))
    return Selection(chosen=chosen, table=rows, summary=summary)
