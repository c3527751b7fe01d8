"""The stages of `fit` in order, each recorded in run.json so a rerun skips what is done."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import tensorflow as tf

from .backbones.weights import keras_weights_file
from .data import prepare_data
from .data.pipeline import make_dataset
from .errors import ResNetAutoMLError, WeightsError
from .features import FeatureCache
from .export import clean_partial_exports, export_serving_model
from .autofit import DEFAULT_TRIALS, FitResult, _auto_image_size, _configure_device
from .hypermodel import ResNetHyperModel
from .model import build_classifier, suggested_bn_momentum
from .probe import ProbeCache, measure_latency
from .report import build_report
from .runinfo import RunRecord, versions
from .search import distributed_role, make_tuner, trials_table
from .selection import Plan, export_and_report_seconds, select_backbones
from .train import train_final
from .verify import verify_export

IN_MEMORY_CACHE_BYTES = 2 * 2**30
SERVABLE = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def _servable_images(items, limit):
    """Test files that TF's own decoder (the serving graph's) reads, for verification and warm-up."""
    chosen = []
    for path, _ in items:
        if Path(path).suffix.lower() in SERVABLE:
            try:
                tf.io.decode_image(Path(path).read_bytes(), channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError:
                continue
            chosen.append(path)
            if len(chosen) >= limit:
                break
    return chosen


def _check_weights(names, weights):
    if weights == "imagenet":
        for name in names:
            if name in ("resnet50", "resnet101", "resnet152"):
                keras_weights_file(name)
            else:
                raise WeightsError(f"{name} has no ImageNet weights in Keras form; pass weights=None "
                                   "(--weights none) or choose resnet50/101/152.")


def _dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 3)


#: Optimiser steps a trial should take at least: fewer leave BatchNorm statistics and weights unsettled.
MIN_TRIAL_STEPS = 120


def default_epochs(steps_per_epoch: int) -> int:
    """Epochs per trial: enough for MIN_TRIAL_STEPS optimiser steps, between 3 and 15."""
    return int(min(15, max(3, math.ceil(MIN_TRIAL_STEPS / steps_per_epoch))))


def _keep_better_of_final_and_trial(model, tuner, best_trial, val_ds, log, notes):
    """Export whichever of the final model and the best trial's model validates better."""
    final_score = float(model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"])
    trial_model = tuner.load_model(best_trial)
    trial_score = float(trial_model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"])
    if trial_score > final_score:
        notes.append(f"The best search trial's model validated better than the final training "
                     f"({trial_score:.4f} vs {final_score:.4f} val accuracy) and is the one exported.")
        log(f"[final] keeping the best trial's model ({trial_score:.4f} > {final_score:.4f} val accuracy)")
        return trial_model
    return model


def _wait_for_chief(out: Path, log, timeout_s: float = 3600.0) -> RunRecord:
    """A worker waits until the chief has written the split and the backbone selection."""
    log("[worker] waiting for the chief to write the data split and the backbone selection")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        record = RunRecord(out) if (out / "run.json").exists() else None
        if record is not None and record.get("chosen_backbones") and (out / "data" / "split.json").exists():
            return record
        time.sleep(2)
    raise ResNetAutoMLError(f"No chief wrote {out / 'run.json'} within {timeout_s:.0f} s. Start the chief with the "
                            "same --out folder (shared by every machine), then the workers.")


def run_pipeline(data, out: Path, opts, budget, clock, *, log, verbose, recipe=None) -> FitResult:
    """Run every stage of a fit in `out` (see `resnet_automl.fit.fit`)."""
    role = distributed_role()
    if role == "worker":
        record = _wait_for_chief(out, log)
    else:
        record = RunRecord(out)
        record.update(data=str(data), recipe=None if recipe is None else str(recipe), options=opts.to_dict(),
                      budget=budget.to_dict(), versions=versions(), role=role)
    timings = dict(record.get("timings", {}))
    strategy, replicas, device = _configure_device(log)
    keras.utils.set_random_seed(opts.seed)

    started = time.time()
    splits = prepare_data(data, out, seed=opts.seed, val_fraction=opts.val_fraction,
                          test_fraction=opts.test_fraction)
    audit = splits.audit
    log(f"[data] {audit['num_images']} images in {splits.num_classes} classes, {audit['num_skipped']} skipped"
        f"{', imbalanced (ratio %.1f)' % audit['imbalance_ratio'] if audit['imbalanced'] else ''}")
    image_size = opts.image_size or record.get("image_size") or _auto_image_size(splits, device != "cpu")
    batch_size = opts.batch_size or 32 * replicas
    n_train = len(splits.train)
    steps = max(1, math.ceil(n_train / batch_size))
    epochs = opts.epochs or default_epochs(steps)
    final_epochs = opts.final_epochs or 2 * epochs
    bn_momentum = suggested_bn_momentum(epochs * steps)
    max_trials = budget.max_trials or DEFAULT_TRIALS
    stage_choices = opts.stage_choices()
    plan = Plan(trials=max_trials, epochs=epochs, final_epochs=final_epochs, train_images=n_train,
                val_images=len(splits.val), trainable_stages=max(stage_choices), batch_size=batch_size)
    if role != "worker":
        record.update(image_size=image_size, batch_size=batch_size, epochs=epochs, final_epochs=final_epochs,
                      bn_momentum=bn_momentum, max_trials=max_trials, device=device)
    timings["data_s"] = round(time.time() - started, 2)

    started = time.time()
    if record.get("selection") is None:
        selection = select_backbones(opts.backbone, budget, image_size=image_size, weights=opts.weights, plan=plan,
                                     probe_cache=ProbeCache(out / "probe.json"), log=log)
        record.update(selection=selection.table, chosen_backbones=selection.chosen,
                      selection_summary=selection.summary)
        timings["selection_s"] = round(time.time() - started, 2)
    log(f"[selection] {record.get('selection_summary')}")
    chosen = record.get("chosen_backbones")
    _check_weights(chosen, opts.weights)

    # ------------------------------------------------------------------ search
    estimate = next((r for r in record.get("selection") if r["name"] == chosen[0]), {})
    ips = estimate.get("probe_images_per_s")
    epoch_s = (n_train + len(splits.val) / 3.0) / ips if ips else None
    final_reserve = 2 * estimate.get("probe_first_step_s", 0.0) + (final_epochs + 1) * epoch_s if epoch_s else 0.0
    reserve = export_and_report_seconds(chosen[0])
    objective = "val_balanced_accuracy" if audit["imbalanced"] else "val_accuracy"
    fits_memory = n_train * image_size * image_size * 12 < IN_MEMORY_CACHE_BYTES
    train_ds = make_dataset(splits.train, image_size, batch_size, shuffle=True, cache=fits_memory, seed=opts.seed)
    val_ds = make_dataset(splits.val, image_size, batch_size, cache=True)
    hypermodel = ResNetHyperModel(
        backbones=chosen, num_classes=splits.num_classes, image_size=image_size, stage_choices=stage_choices,
        weights=opts.weights, epochs=epochs, steps_per_epoch=steps,
        class_weight=splits.class_weights() if audit["imbalanced"] else None, bn_momentum=bn_momentum,
        learning_rate_range=tuple(opts.learning_rate_range),
        balanced_val=(val_ds, [label for _, label in splits.val]) if audit["imbalanced"] else None,
        deadline_fn=(lambda: clock.deadline - final_reserve - reserve) if clock.deadline else None,
        objective=objective, batch_size=batch_size, seed=opts.seed,
        feature_cache=FeatureCache(out / "cache", opts.feature_cache_memory_mb * 2**20) if opts.feature_cache else None,
        train_items=splits.train, val_items=splits.val)
    tuner_box = {}

    def out_of_time() -> bool:
        tuner = tuner_box["tuner"]
        if clock.deadline is None or not any(t.score is not None for t in tuner.oracle.trials.values()):
            return False  # no limit, or nothing to export yet: at least one trial runs
        mean = tuner.mean_trial_seconds() or (
            (estimate.get("estimated_minutes") or 0) * 60.0 / (max_trials + 1))
        return clock.remaining() < mean + final_reserve + reserve

    tuner = make_tuner(opts.tuner, hypermodel, objective=objective, max_trials=max_trials, directory=out,
                       seed=opts.seed, overwrite=False, epochs=epochs, should_stop=out_of_time,
                       distribution_strategy=strategy, log=log)
    tuner_box["tuner"] = tuner
    started = time.time()
    if not record.stage_done("search"):
        log(f"[search] {opts.tuner} over trainable_stages {stage_choices} x learning rate "
            f"{opts.learning_rate_range} ({'x backbone ' + str(chosen) if len(chosen) > 1 else chosen[0]}), "
            f"up to {max_trials} trials of {epochs} epochs, objective {objective}")
        try:
            tuner.search(train_ds, validation_data=val_ds, epochs=epochs, verbose=1 if verbose > 1 else 0,
                         callbacks=[keras.callbacks.TensorBoard(str(out / "logs" / "search"), write_graph=False)])
        except RuntimeError as exc:
            if "consecutive failures" not in str(exc):
                raise
            last = str(exc).strip().splitlines()[-1]
            raise ResNetAutoMLError(f"The search stopped: {tuner.oracle.max_consecutive_failed_trials} trials in a "
                                    f"row failed (last: {last}). Lower the learning-rate range or the batch "
                                    "size, then rerun the same command to resume.") from None
        if role == "worker":
            log(f"[worker {tuner.tuner_id}] the chief reports the search finished; it trains and exports")
            mine = json.loads(tuner.timings_path.read_text()) if tuner.timings_path.exists() else {}
            return FitResult(model=None, class_names=splits.class_names, backbone=chosen[0], best_hyperparameters={},
                             trials=[{"trial_id": k, "seconds": v} for k, v in mine.items()],
                             paths={"run_dir": str(out)})
        timings["search_s"] = round(timings.get("search_s", 0) + time.time() - started, 2)
        stopped_early = out_of_time()
        cache = hypermodel.feature_cache
        record.mark_done("search", trials=trials_table(tuner), search_stopped_for_time=stopped_early,
                         feature_cache=None if cache is None else {"computed": cache.computed, "reused": cache.reused})
    trials = trials_table(tuner)
    best = tuner.oracle.get_best_trials(1)
    if not best or best[0].score is None:
        reasons = "; ".join(f"trial {t['trial_id']}: {t['status']} {t['message']}" for t in trials) or "none ran"
        raise ResNetAutoMLError(f"No tuner trial completed ({reasons}). Give the fit more time (--minutes) "
                                "or check the data; rerun with --overwrite to start the search again.")
    best_values = dict(best[0].hyperparameters.values)
    log(f"[search] best: {best_values} ({objective} {best[0].score:.4f})")

    # ------------------------------------------------------------------ final training
    final_dir = out / "final"
    notes = list(record.get("notes", []))
    started = time.time()
    if not record.stage_done("final"):
        time_left = clock.remaining() - reserve
        if clock.deadline is not None and epoch_s and time_left < 2 * epoch_s:
            model = tuner.load_model(best[0])
            history = {}
            final_dir.mkdir(exist_ok=True)
            model.save_weights(final_dir / "model.weights.h5")
            notes.append("Final training skipped: the time budget was spent; the best search trial's model is exported.")
            log("[final] no time left: exporting the best trial's model")
        else:
            model, history = train_final(
                best_values, splits=splits, image_size=image_size, weights=opts.weights, epochs=final_epochs,
                batch_size=batch_size, bn_momentum=bn_momentum, out_dir=out,
                class_weight=splits.class_weights() if audit["imbalanced"] else None,
                deadline=None if clock.deadline is None else clock.deadline - reserve,
                seed=opts.seed, verbose=1 if verbose > 1 else 0, log=log, strategy=strategy)
            model = _keep_better_of_final_and_trial(model, tuner, best[0], val_ds, log, notes)
            model.save_weights(final_dir / "model.weights.h5")
        notes.append("Search trials ran without augmentation; the final training used flips, rotation, zoom "
                     "and shifts.")
        timings["final_s"] = round(time.time() - started, 2)
        record.mark_done("final", best_hyperparameters=best_values, history=history, notes=notes)
    else:
        model = build_classifier(best_values["backbone"], splits.num_classes, image_size=image_size,
                                 trainable_stages=best_values["trainable_stages"], bn_momentum=bn_momentum)
        model.load_weights(final_dir / "model.weights.h5")
        history = record.get("history", {})

    # ------------------------------------------------------------------ export
    started = time.time()
    if not record.stage_done("export"):
        clean_partial_exports(out / "model")
        samples = _servable_images(splits.test, 16)
        version_dir = export_serving_model(model, splits.class_names, out / "model", image_size=image_size,
                                           model_name=out.resolve().name,
                                           warmup_images=[Path(p).read_bytes() for p in samples[:3]])
        check = verify_export(version_dir, model, samples, image_size)
        log(f"[export] {version_dir}: fresh-process check {'passed' if check['passed'] else 'FAILED'} "
            f"(max |diff| {check.get('max_abs_diff', float('nan')):.2e} on {check['images']} images)")
        timings["export_s"] = round(time.time() - started, 2)
        record.mark_done("export", export=check, version_dir=str(version_dir))
    version_dir = Path(record.get("version_dir"))

    # ------------------------------------------------------------------ report
    started = time.time()
    test_ds = make_dataset(splits.test, image_size, batch_size)
    probabilities = model.predict(test_ds, verbose=0)
    latency = measure_latency(model, image_size, batch32=True)
    context = {
        "backbone": best_values["backbone"], "hyperparameters": best_values, "trials": trials,
        "selection": record.get("selection"), "latency_ms": latency,
        "model": {"params": int(model.count_params()), "size_mb": _dir_mb(version_dir),
                  "image_size": image_size, "version_dir": str(version_dir)},
        "budget": {"allowed": budget.to_dict(), "used_minutes_this_call": round(clock.elapsed() / 60.0, 3),
                   "trials_run": len(trials)},
        "timings": timings, "audit": audit, "export": record.get("export"), "versions": versions(),
        "history": history, "notes": notes + [f"Objective: {objective}."],
    }
    report = build_report(probabilities, splits.test, splits.class_names, context, out / "report")
    timings["report_s"] = round(time.time() - started, 2)
    timings["total_s"] = round(sum(v for k, v in timings.items() if k.endswith("_s") and k != "total_s"), 2)
    record.mark_done("report", timings=timings, latency_ms=latency,
                     test_accuracy=report["accuracy"], test_balanced_accuracy=report["balanced_accuracy"])
    log(f"[report] test accuracy {report['accuracy']:.4f}, balanced {report['balanced_accuracy']:.4f}: "
        f"{report['paths']['html']}")
    return FitResult(model=model, class_names=splits.class_names, backbone=best_values["backbone"],
                     best_hyperparameters=best_values, trials=trials, history=history,
                     selection=record.get("selection"), report=report,
                     paths={"run_dir": str(out), "run_json": str(out / "run.json"), "model_dir": str(out / "model"),
                            "version_dir": str(version_dir), "report_html": report["paths"]["html"],
                            "report_json": report["paths"]["json"], "report_md": report["paths"]["markdown"]})


