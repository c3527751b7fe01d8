"""run.json as a typed record: every key a field, read and validated in one place, written atomically.

The stages resume from it, `export` and `--weights RUN_DIR` read it, and distributed workers wait
for the chief's. A damaged file (truncated, empty, not an object, a key of the wrong type) stops
with `RunStateError` (exit 2) naming the file, what is wrong and what to do; never a traceback.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from resnet_automl.errors import RunStateError
from resnet_automl.runtime.files import read_json_object, write_json_atomic
from resnet_automl.runtime.run_folder import RUN_FILE, RunLayout

_NUMBER = (int, float)
#: What to do about a damaged run record.
_FIX = ("Rerun with --overwrite to start this run again (exported model versions are kept), pass another --out, "
        "or restore the file from a backup.")


def _key(kinds: tuple, default=None, factory=None):
    """A record field that JSON holds as one of `kinds` (or null when `default` is None)."""
    meta = {"kinds": kinds}
    return field(default_factory=factory, metadata=meta) if factory is not None \
        else field(default=default, metadata=meta)


@dataclass
class RunRecord:
    """The keys of run.json.

    Attributes (None until the stage that writes them has run):
        data, recipe: str, the dataset argument and the recipe file of the fit.
        options, budget: dict, the resolved `FitOptions` and `Budget`.
        versions: dict, versions of the stack and the Keras backend.
        role: str, "single", "chief" or "worker".
        pretrained: dict, the starting weights (`WeightsSource.describe`), None from random initialisation.
        stages_done: list of str, the finished stages ("search", "final", "export", "report").
        task: str, "multiclass" or "multilabel".
        image_size, batch_size: int, pixels per side and images per batch.
        epochs, final_epochs, max_trials: int, the plan of trials and final training.
        final_uses_val: bool, the final training also learns from the validation images.
        bn_momentum: float, BatchNorm momentum of the backbone.
        device: str, "cpu" or "gpu"; device_setup: dict, backend, precision, replicas.
        selection: list of dicts, one row per candidate backbone; chosen_backbones: list of str;
            selection_summary: str, why.
        trials: list of dicts, the trials table; search_stopped_for_time: bool; feature_cache: dict.
        final_epochs_run, final_replan_to: int, the final training's planned epochs and the most it
            may re-plan to (a resume keeps both).
        best_hyperparameters: dict; history: dict, the final training's curves; notes: list of str.
        thresholds: list of float, a multi-label model's decision threshold per label;
            threshold_table: dict, label -> how its threshold was chosen.
        export: dict, the SavedModel's check; export_rejected: str, where a failed one went;
            version_dir: str, the exported version's folder; exports: dict, format -> its check.
        timings: dict, seconds per stage; latency_ms: dict; test_accuracy, test_balanced_accuracy,
            test_map: float, the report's headline figures.
        updated: str, the time of the last write.
    """

    path: Path = field(metadata={"kinds": None})
    data: str | None = _key((str,))
    recipe: str | None = _key((str,))
    options: dict = _key((dict,), factory=dict)
    budget: dict = _key((dict,), factory=dict)
    versions: dict = _key((dict,), factory=dict)
    role: str | None = _key((str,))
    pretrained: dict | None = _key((dict,))
    stages_done: list = _key((list,), factory=list)
    task: str | None = _key((str,))
    image_size: int | None = _key((int,))
    batch_size: int | None = _key((int,))
    epochs: int | None = _key((int,))
    final_epochs: int | None = _key((int,))
    final_uses_val: bool | None = _key((bool,))
    bn_momentum: float | None = _key(_NUMBER)
    max_trials: int | None = _key((int,))
    device: str | None = _key((str,))
    device_setup: dict | None = _key((dict,))
    selection: list | None = _key((list,))
    chosen_backbones: list | None = _key((list,))
    selection_summary: str | None = _key((str,))
    trials: list = _key((list,), factory=list)
    search_stopped_for_time: bool | None = _key((bool,))
    feature_cache: dict | None = _key((dict,))
    final_epochs_run: int | None = _key((int,))
    final_replan_to: int | None = _key((int,))
    best_hyperparameters: dict | None = _key((dict,))
    history: dict = _key((dict,), factory=dict)
    notes: list = _key((list,), factory=list)
    thresholds: list | None = _key((list,))
    threshold_table: dict | None = _key((dict,))
    export: dict | None = _key((dict,))
    export_rejected: str | None = _key((str,))
    version_dir: str | None = _key((str,))
    exports: dict = _key((dict,), factory=dict)
    timings: dict = _key((dict,), factory=dict)
    latency_ms: dict | None = _key((dict,))
    test_accuracy: float | None = _key(_NUMBER)
    test_balanced_accuracy: float | None = _key(_NUMBER)
    test_map: float | None = _key(_NUMBER)
    updated: str | None = _key((str,))
    #: Keys this version does not know (written by another version of the package), kept as they were.
    extra: dict = field(default_factory=dict, metadata={"kinds": None})

    @classmethod
    def kinds(cls) -> dict:
        """run.json's keys -> the JSON types (tuple of Python types) each may hold besides null."""
        return {f.name: f.metadata["kinds"] for f in fields(cls) if f.metadata.get("kinds")}

    @classmethod
    def keys(cls) -> list:
        """The names of run.json's keys."""
        return list(cls.kinds())

    @classmethod
    def open(cls, run_dir) -> RunRecord:
        """The record of the run folder `run_dir`: read and validated when run.json exists, else empty."""
        path = RunLayout(run_dir).run_file
        return cls.read(path) if path.exists() else cls(path)

    @classmethod
    def read(cls, path) -> RunRecord:
        """The record in the file `path`, validated: `RunStateError` when it cannot be read as a run record."""
        path = Path(path)
        content = read_json_object(path, what="the run record", fix=_FIX)
        kinds = cls.kinds()
        known, extra = {}, {}
        for key, value in content.items():
            if key not in kinds:
                extra[key] = value
                continue
            if value is not None and not _is_kind(value, kinds[key]):
                raise RunStateError(f"The run record {str(path)!r} is damaged: its key {key!r} holds "
                                    f"{json.dumps(value)[:60]} where {' or '.join(k.__name__ for k in kinds[key])} "
                                    f"belongs. {_FIX}")
            if value is not None:
                known[key] = value
        return cls(path=path, extra=extra, **known)

    def as_dict(self) -> dict:
        """The JSON object written to run.json."""
        values = {name: getattr(self, name) for name in self.keys()}
        return {**self.extra, **values}

    def update(self, **values) -> None:
        """Set the named keys and write the file (atomically)."""
        unknown = sorted(set(values) - set(self.keys()))
        if unknown:
            raise TypeError(f"{RUN_FILE} has no key(s) {unknown}; add them to RunRecord")
        for name, value in values.items():
            setattr(self, name, value)
        self.updated = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json_atomic(self.path, self.as_dict())

    def stage_done(self, stage: str) -> bool:
        return stage in self.stages_done

    def mark_done(self, stage: str, **values) -> None:
        """Record `stage` as finished, with `values`, in one write."""
        done = list(self.stages_done)
        if stage not in done:
            done.append(stage)
        self.update(stages_done=done, **values)


def _is_kind(value, kinds: tuple) -> bool:
    if isinstance(value, bool):  # JSON true/false is not a number here
        return bool in kinds
    return isinstance(value, kinds)
