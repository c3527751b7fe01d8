"""The stages of `fit` in order, each recorded in run.json so a rerun skips what is done."""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np

from resnet_automl.runtime import device
from resnet_automl.runtime import interrupts
from resnet_automl.runtime import console as quiet
from resnet_automl.backbones import get_spec
from resnet_automl.weights.imagenet_torchvision import ensure_converted_weights
from resnet_automl.weights.imagenet_keras import keras_weights_file
from resnet_automl.runtime.backend import module_installed
from resnet_automl.data import auto_image_size, prepare_data
from resnet_automl.data.arrays import load_images
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.data.images import SERVABLE_EXTENSIONS
from resnet_automl.errors import ResNetAutoMLError
from resnet_automl.pipeline.final_stage import FinalStage
from resnet_automl.modeling.classifier import suggested_bn_momentum
from resnet_automl.weights.source import backbone_for, resolve_weights
from resnet_automl.planning.probe import ProbeCache, measure_latency
from resnet_automl.runtime.progress import on_terminal
from resnet_automl.report.build import build_report
from resnet_automl.pipeline.result import FitResult
from resnet_automl.pipeline.run_dir import RunRecord, distributed_role, versions
from resnet_automl.planning.schedule import (
    default_epochs,
    default_final_epochs,
    default_trials,
    selection_plan,
)
from resnet_automl.pipeline.search_stage import SearchStage
from resnet_automl.planning.selection import Plan, export_and_report_seconds, select_backbones
from resnet_automl.serving.layout import clean_partial_exports
from resnet_automl.serving.verify import verify_export

#: Decoded images up to this many bytes per split stay in memory; larger arrays are memory-mapped.
IN_MEMORY_IMAGE_BYTES = 2 * 2**30


def _servable_images(items, limit):
    """Up to `limit` test files with an ending the serving graph decodes (for verification and warm-up)."""
    return [path for path, _ in items if Path(path).suffix.lower() in SERVABLE_EXTENSIONS][:limit]


def _check_weights(names, weights):
    """Make sure ImageNet weights of every chosen backbone are here (downloading them if needed),
    before any training: offline, fit stops with the file, URL, cache folder and alternatives."""
    if weights != "imagenet":
        return
    for name in names:
        if get_spec(name).layout == "keras":
            keras_weights_file(name)
        else:
            ensure_converted_weights(name)


def _dir_mb(path: Path | None) -> float | None:
    if path is None:
        return None
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 3)


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


class FitRun(SearchStage, FinalStage):
    """One call of `fit`: shared settings plus one method per stage, in order.

    Each stage records itself in run.json (`RunRecord.mark_done`); a rerun skips finished stages.
    """

    def __init__(self, data, out: Path, opts, budget, clock, *, log, verbose, recipe=None, source=None):
        self.data, self.out, self.opts, self.budget, self.clock = data, out, opts, budget, clock
        self.source = source or resolve_weights(opts.weights)
        self.log, self.verbose = log, verbose
        self.role = distributed_role()
        if self.role == "worker":
            self.record = _wait_for_chief(out, log)
        else:
            self.record = RunRecord(out)
            self.record.update(data=str(data), recipe=None if recipe is None else str(recipe),
                               options=opts.to_dict(), budget=budget.to_dict(), versions=versions(), role=self.role,
                               pretrained=self.source.describe())
        self.timings = dict(self.record.get("timings", {}))
        self.notes = list(self.record.get("notes", []))
        with quiet.filtered_native_stderr():  # the first device query prints CUDA probing lines
            self.setup = device.configure(opts.precision, log)
        # `run_pipeline` undoes this when the fit returns or fails
        device.enable_compilation_cache(out / "cache" / "xla")
        if self.setup.kind == "cpu" and self.setup.backend == "tensorflow" and not self.source.pretrained \
                and module_installed("jax"):
            log("[device] training from random initialisation on TensorFlow: JAX trains these networks 1.5-2x "
                "faster on a CPU; set KERAS_BACKEND=jax before Keras is imported (`resnet-automl fit` does)")
        #: A live progress line per training: on a terminal, at verbose 1 (verbose 2 shows Keras' bars).
        self.live = verbose == 1 and on_terminal()
        self.strategy, self.device = self.setup.strategy, self.setup.kind
        self.batch_size = opts.batch_size or 32 * self.setup.replicas
        device.seed_everything(opts.seed)

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0) + time.time() - started, 2)

    # ------------------------------------------------------------------ data and plan
    def prepare(self) -> None:
        started, opts = time.time(), self.opts
        self.splits = prepare_data(self.data, self.out, seed=opts.seed, val_fraction=opts.val_fraction,
                                   test_fraction=opts.test_fraction)
        audit = self.audit = self.splits.audit
        self.log(f"[data] {audit['num_images']} images in {self.splits.num_classes} classes, "
                 f"{audit['num_skipped']} skipped"
                 f"{', imbalanced (ratio %.1f)' % audit['imbalance_ratio'] if audit['imbalanced'] else ''}")
        self.image_size = (opts.image_size or self.record.get("image_size") or self.source.image_size
                           or auto_image_size(self.splits, self.device != "cpu", pretrained=self.source.pretrained))
        self.steps = max(1, math.ceil(len(self.splits.train) / self.batch_size))
        self.epochs = opts.epochs or default_epochs(self.steps)
        self.final_uses_val = opts.final_uses_val(len(self.splits.train))
        self.final_epochs = opts.final_epochs or default_final_epochs(
            self.epochs, self.final_steps, self.source.pretrained, epochs_chosen=opts.epochs is not None)
        self.bn_momentum = suggested_bn_momentum(self.epochs * self.steps)
        self.max_trials = self.budget.max_trials or default_trials(len(opts.stage_choices()),
                                                                       opts.backbones_named())
        self.objective = "val_balanced_accuracy" if audit["imbalanced"] else "val_accuracy"
        self.class_weight = self.splits.class_weights() if audit["imbalanced"] else None
        if self.role != "worker":
            self.record.update(image_size=self.image_size, batch_size=self.batch_size, epochs=self.epochs,
                               final_epochs=self.final_epochs, final_uses_val=self.final_uses_val,
                               bn_momentum=self.bn_momentum,
                               max_trials=self.max_trials, device=self.device,
                               device_setup={"description": self.setup.description, "backend": self.setup.backend,
                                             "precision": self.setup.precision, "replicas": self.setup.replicas})
        self.labels = {name: np.array([label for _, label in self.splits.split(name)], dtype=np.int32)
                       for name in ("train", "val", "test")}
        self._arrays = {}
        self._timed("data_s", started)

    def images(self, split: str) -> np.ndarray:
        """uint8 pixels of a split, decoded on first use (once per run: cached in DIR/cache)."""
        if split not in self._arrays:
            started = time.time()
            self._arrays[split] = load_images(self.splits.split(split), self.image_size, self.out / "cache",
                                              memory_limit_bytes=IN_MEMORY_IMAGE_BYTES)
            self._timed("data_s", started)
        return self._arrays[split]

    def batches(self, split: str, shuffle: bool = False) -> ArrayBatches:
        """`ArrayBatches` of a split (training order reshuffled every epoch when `shuffle`)."""
        return ArrayBatches(self.images(split), self.labels[split], self.batch_size, shuffle=shuffle,
                            seed=self.opts.seed)

    def select(self) -> None:
        started, record = time.time(), self.record
        plan = Plan(trials=self.max_trials, epochs=self.epochs, final_epochs=self.final_epochs,
                    train_images=len(self.splits.train), val_images=len(self.splits.val),
                    final_uses_val=self.final_uses_val,
                    trainable_stages=max(self.opts.stage_choices()), batch_size=self.batch_size,
                    augment=not self.source.pretrained)
        if record.get("selection") is None:
            source_backbone = backbone_for(self.source, self.opts.backbone)  # a run or file fixes the backbone
            selection = select_backbones(source_backbone or self.opts.backbone, self.budget,
                                         image_size=self.image_size, weights=self.opts.weights,
                                         plan=self._selection_plan(plan),
                                         probe_cache=ProbeCache(self.out / "probe.json"), log=self.log)
            if source_backbone is not None:
                for row in selection.table:
                    row["reason"] = f"the backbone of the pretrained source {self.source.path}; {row['reason']}"
                selection.summary = f"chose {source_backbone}: the backbone of the pretrained source {self.source.path}"
            record.update(selection=selection.table, chosen_backbones=selection.chosen,
                          selection_summary=selection.summary)
            self._timed("selection_s", started)
        for row in record.get("selection"):
            self.log(f"[selection]   {row['name']:<17} {row['params']:>11,} params {row['gflops']:>8.3g} GFLOPs  "
                     f"{row['verdict']}: {row['reason']}")
        self.log(f"[selection] {record.get('selection_summary')}")
        self.chosen = record.get("chosen_backbones")
        _check_weights(self.chosen, self.opts.weights)
        estimate = next((r for r in record.get("selection") if r["name"] == self.chosen[0]), {})
        ips = estimate.get("probe_images_per_s")
        self.epoch_s = plan.trial_epoch_seconds(ips) if ips else None
        self.first_step_s = estimate.get("probe_first_step_s") or 0.0
        self.final_reserve = plan.final_seconds(self.first_step_s, ips) if ips else 0.0
        # one trial as the probe times it: since the estimate from random initialisation holds the whole
        # final training, the estimate's share per trial would count several trials' worth
        self.trial_estimate_s = plan.trial_seconds(self.first_step_s, ips) if ips else 0.0
        self.reserve = export_and_report_seconds(self.chosen[0], device.backend())

    def _selection_plan(self, plan: Plan) -> Plan:
        """The plan a candidate must fit in the time budget (`schedule.selection_plan`)."""
        return selection_plan(plan, time_budget=self.clock.deadline is not None,
                              final_epochs_chosen=bool(self.opts.final_epochs), pretrained=self.source.pretrained)

    # ------------------------------------------------------------------ export and report
    def weights_metadata(self) -> dict:
        """The description stored with the final weights (what a later export or transfer reads)."""
        spec = get_spec(self.best_values["backbone"])
        return {"kind": "classifier", "backbone": spec.name, "layout": spec.layout,
                "num_classes": self.splits.num_classes, "class_names": list(self.splits.class_names),
                "image_size": self.image_size, "trainable_stages": int(self.best_values["trainable_stages"]),
                "run_dir": str(self.out.resolve())}

    def export(self, model) -> Path | None:
        """Write the SavedModel and check it in a fresh process; None when TensorFlow is missing here."""
        started = time.time()
        if not self.record.stage_done("export"):
            clean_partial_exports(self.out / "model")
            samples = _servable_images(self.splits.test, 16)
            common = {"model_name": self.out.resolve().name}
            if device.backend() == "tensorflow":
                from resnet_automl.serving.export import export_serving_model

                version_dir = export_serving_model(model, self.splits.class_names, self.out / "model",
                                                   image_size=self.image_size,
                                                   warmup_images=[Path(p).read_bytes() for p in samples[:3]], **common)
            elif device.tensorflow_available():
                from resnet_automl.serving.tensorflow_process import export_in_tensorflow_process

                self.log(f"[export] {device.backend()} backend: the SavedModel is written by a TensorFlow process "
                         "from the final weights")
                version_dir = export_in_tensorflow_process(self.out / "final" / "model.weights.h5",
                                                           self.out / "model", warmup_paths=samples[:3], **common)
            else:
                note = ("TensorFlow is not installed on this machine, so no SavedModel was written. The final "
                        f"weights are in {self.out / 'final' / 'model.weights.h5'}; on a machine with TensorFlow "
                        f"and the same dataset path, run `resnet-automl export {self.out}` to write and check it.")
                if note not in self.notes:
                    self.notes.append(note)
                self.log(f"[export] skipped: {note}")
                return None
            check = verify_export(version_dir, lambda pixels: model.predict(pixels, verbose=0), samples,
                                  self.image_size)
            self.log(f"[export] {version_dir}: fresh-process check {'passed' if check['passed'] else 'FAILED'} "
                     f"(max |diff| {check.get('max_abs_diff', float('nan')):.2e} on {check['images']} images)")
            self._timed("export_s", started)
            self.record.mark_done("export", export=check, version_dir=str(version_dir))
        return Path(self.record.get("version_dir"))

    def report(self, model, history, version_dir: Path) -> dict:
        started, splits = time.time(), self.splits
        probabilities = model.predict(self.batches("test"), verbose=0)
        latency = measure_latency(model, self.image_size, batch32=True)
        context = {
            "backbone": self.best_values["backbone"], "hyperparameters": self.best_values, "trials": self.trials,
            "selection": self.record.get("selection"), "latency_ms": latency,
            "model": {"params": int(model.count_params()), "size_mb": _dir_mb(version_dir),
                      "image_size": self.image_size, "version_dir": None if version_dir is None else str(version_dir)},
            "budget": {"allowed": self.budget.to_dict(), "trials_run": len(self.trials),
                       "used_minutes_this_call": round(self.clock.elapsed() / 60.0, 3)},
            "timings": self.timings, "audit": self.audit, "export": self.record.get("export"),
            "versions": versions(), "history": history, "notes": self.notes + [f"Objective: {self.objective}."],
            "pretrained": self.source.describe(),
        }
        report = build_report(probabilities, splits.test, splits.class_names, context, self.out / "report")
        self._timed("report_s", started)
        self.timings["total_s"] = round(sum(v for k, v in self.timings.items() if k != "total_s"), 2)
        self.record.mark_done("report", timings=self.timings, latency_ms=latency, test_accuracy=report["accuracy"],
                              test_balanced_accuracy=report["balanced_accuracy"])
        shutil.rmtree(self.out / "cache", ignore_errors=True)  # decoded images and features: a rerun needs none
        self.log(f"[report] test accuracy {report['accuracy']:.4f}, balanced {report['balanced_accuracy']:.4f}: "
                 f"{report['paths']['html']}")
        return report


def run_pipeline(data, out: Path, opts, budget, clock, *, log, verbose, recipe=None, source=None) -> FitResult:
    """Run every stage of a fit in `out` (see `resnet_automl.pipeline.fit.fit`)."""
    try:
        run = FitRun(data, out, opts, budget, clock, log=log, verbose=verbose, recipe=recipe, source=source)
        run.prepare()
        run.select()
        best_trial = run.search()
        if best_trial is None:
            return run.worker_result()
        interrupts.check()
        model, history = run.train(best_trial)
        interrupts.check()
        version_dir = run.export(model)
        interrupts.check()
        report = run.report(model, history, version_dir)
    finally:  # DIR/cache/xla is gone once the report is written; the caller's later compiles are not the run's
        device.disable_compilation_cache()
    return FitResult(model=model, class_names=run.splits.class_names, backbone=run.best_values["backbone"],
                     best_hyperparameters=run.best_values, trials=run.trials, history=history,
                     selection=run.record.get("selection"), report=report,
                     paths={"run_dir": str(out), "run_json": str(out / "run.json"), "model_dir": str(out / "model"),
                            "version_dir": None if version_dir is None else str(version_dir),
                            "report_html": report["paths"]["html"],
                            "report_json": report["paths"]["json"], "report_md": report["paths"]["markdown"]})
