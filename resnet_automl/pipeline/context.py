"""What the stages of one fit share, made explicit: the run context, the data, the backbone choice.

The training plan is `planning.training_plan.TrainingPlan`.

Each stage of `run.run_pipeline` is a function that takes these objects and returns what it
produced; none of them reads another stage's attributes.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from resnet_automl.config.budget import Budget
from resnet_automl.config.options import IN_MEMORY_LIMIT_BYTES, FitOptions
from resnet_automl.data.arrays import load_images
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.data.split import DatasetSplits
from resnet_automl.pipeline.clock import Clock
from resnet_automl.runtime.run_folder import RunLayout
from resnet_automl.runtime.run_record import RunRecord
from resnet_automl.weights.source import WeightsSource

if TYPE_CHECKING:  # the device module imports Keras, which `fit` loads only after its cheap checks
    from resnet_automl.runtime.device import DeviceSetup

logger = logging.getLogger(__name__)


@dataclass
class RunContext:
    """The settings and records of one fit, shared by every stage.

    Attributes:
        data: the dataset argument of `fit` (a folder or "tfds:NAME").
        out: Path, the run directory.
        opts: the validated `FitOptions`.
        budget: the `Budget`.
        clock: the `Clock` of this call.
        source: the resolved `WeightsSource` of the starting weights.
        record: the `RunRecord` (run.json) that makes stages resumable.
        role: "single", "chief" or "worker" (Keras Tuner's distributed mode).
        setup: the `DeviceSetup` (device kind, backend, precision, replicas, strategy).
        verbose: int, 0 silent, 1 a line per stage and trial, 2 Keras progress bars too.
        live: bool, show a live progress line per training (a terminal at verbose 1).
        batch_size: int, images per batch.
        timings: dict, seconds per stage (`*_s`), kept in run.json.
        notes: list of str, sentences for the report.
    """

    data: object
    out: Path
    opts: FitOptions
    budget: Budget
    clock: Clock
    source: WeightsSource
    record: RunRecord
    role: str
    setup: "DeviceSetup"
    verbose: int = 1
    live: bool = False
    batch_size: int = 32
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def layout(self) -> RunLayout:
        """The paths of the run folder."""
        return RunLayout(self.out)

    def timed(self, name: str, started: float) -> None:
        """Add the seconds since `started` (a `time.time()`) to `timings[name]`."""
        self.timings[name] = round(self.timings.get(name, 0) + time.time() - started, 2)

    def note(self, sentence: str) -> None:
        """Add `sentence` to the report's notes once."""
        if sentence not in self.notes:
            self.notes.append(sentence)

    @property
    def keras_verbose(self) -> int:
        """Keras' own progress bars: only at verbose 2."""
        return 1 if self.verbose > 1 else 0


@dataclass
class RunData:
    """The audited split of a fit and its pixels, decoded once per run (cached in DIR/cache).

    Attributes:
        splits: the `DatasetSplits` (file lists, class names, audit).
        image_size: int, the square side images are decoded and trained at.
        cache_dir: Path, where decoded arrays are cached.
        seed: int, the training order's seed.
        batch_size: int, images per batch.
    """

    splits: DatasetSplits
    image_size: int
    cache_dir: Path
    seed: int
    batch_size: int
    labels: dict = field(init=False)
    _arrays: dict = field(init=False, default_factory=dict, repr=False)
    _predicted: tuple | None = field(init=False, default=None, repr=False)
    decode_seconds: float = field(init=False, default=0.0)

    def __post_init__(self):
        self.labels = {name: self.splits.label_array(name) for name in ("train", "val", "test")}

    @property
    def audit(self) -> dict:
        return self.splits.audit

    def images(self, split: str) -> np.ndarray:
        """uint8 pixels [N, S, S, 3] of `split` ("train", "val" or "test"), decoded on first use."""
        if split not in self._arrays:
            started = time.time()
            self._arrays[split] = load_images(self.splits.split(split), self.image_size, self.cache_dir,
                                              memory_limit_bytes=IN_MEMORY_LIMIT_BYTES)
            self.decode_seconds += time.time() - started
        return self._arrays[split]

    def predictions(self, model, split: str) -> np.ndarray:
        """`model`'s probabilities on `split` ([N, C] float), predicted once for the last model asked
        about: the export-format checks and the report share the test split's."""
        held = self._predicted
        if held is None or held[0] is not model or split not in held[1]:
            if held is None or held[0] is not model:
                held = self._predicted = (model, {})
            held[1][split] = model.predict(self.batches(split), verbose=0)
        return held[1][split]

    def batches(self, split: str, shuffle: bool = False) -> ArrayBatches:
        """`ArrayBatches` of `split` (the training order reshuffled every epoch when `shuffle`)."""
        return ArrayBatches(self.images(split), self.labels[split], self.batch_size, shuffle=shuffle, seed=self.seed)


@dataclass(frozen=True)
class BackboneChoice:
    """The selection's outcome and the time estimates the later stages plan with.

    Attributes:
        chosen: list of str, the backbone(s) the search runs over.
        epoch_s: float or None, estimated seconds of one trial epoch (from the probe).
        first_step_s: float, seconds of the first (compiling) training step.
        final_reserve: float, estimated seconds of the final training.
        trial_estimate_s: float, estimated seconds of one trial.
        reserve: float, seconds set aside for export and report.
    """

    chosen: list
    epoch_s: float | None
    first_step_s: float
    final_reserve: float
    trial_estimate_s: float
    reserve: float
