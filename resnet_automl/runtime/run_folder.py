"""Every path of a run folder, from one root, and the names of the files a model folder holds.

    DIR/run.json                 the run record (`run_record.RunRecord`)
    DIR/data/split.json          the audited split (`data.split.DatasetSplits`)
    DIR/data/tfds/               a TFDS source written out as images
    DIR/probe.json               the backbone probe's measurements
    DIR/tuner/                   the Keras Tuner project
    DIR/cache/                   decoded images, features, XLA's compilation cache
    DIR/logs/                    TensorBoard logs and the export child's log
    DIR/final/model.weights.h5   the final classifier and its description
    DIR/model/<version>/         the TF Serving SavedModel (`model_base_path` = DIR/model)
    DIR/exports/<format>/        LiteRT and ONNX files
    DIR/report/                  report.html, report.json, report.md, the model card, plots
    DIR/rejected/                exports that failed their check

Each name is spelled here once; every other module asks a `RunLayout` (or these constants).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The run record, relative to the run folder.
RUN_FILE = "run.json"
#: A Keras weights file with its description (`weights.io.save_weights`).
WEIGHTS_FILE = "model.weights.h5"
#: One label per output line, in output order, beside every exported model.
LABELS_FILE = "labels.txt"
#: A multi-label model's decision threshold per label (JSON {label: threshold}), beside the model.
THRESHOLDS_FILE = "thresholds.json"
#: The split file's name inside the run's `data/` folder.
SPLIT_FILE = "split.json"
#: The lock file of the run folder's owner (`pipeline.run_dir.run_lock`).
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder.

    Attributes:
        root: Path, the run folder (`--out`).

    Example:
        >>> RunLayout(Path("runs/flowers")).final_weights
        PosixPath('runs/flowers/final/model.weights.h5')
    """

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def split_file(self) -> Path:
        return self.data_dir / SPLIT_FILE

    @property
    def tfds_dir(self) -> Path:
        return self.data_dir / "tfds"

    @property
    def probe_file(self) -> Path:
        return self.root / "probe.json"

    @property
    def tuner_dir(self) -> Path:
        """Keras Tuner's project folder (the tuner is made with `directory=root`, `project_name="tuner"`)."""
        return self.root / "tuner"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def xla_cache_dir(self) -> Path:
        return self.cache_dir / "xla"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def export_log(self) -> Path:
        """The log of the TensorFlow child that writes exports for a JAX- or torch-trained run."""
        return self.logs_dir / "export-child.log"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def final_weights(self) -> Path:
        return self.final_dir / WEIGHTS_FILE

    @property
    def model_dir(self) -> Path:
        """TF Serving's `model_base_path`: one integer folder per exported version."""
        return self.root / "model"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def rejected_dir(self) -> Path:
        return self.root / "rejected"

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    def version_dir(self, version) -> Path:
        """The folder of exported version `version` (an int, or a path whose last part is one)."""
        return self.model_dir / Path(str(version)).name

    @property
    def resettable(self) -> tuple:
        """What `--overwrite` removes; `model/` stays, since an export never overwrites a version."""
        return (self.run_file, self.tuner_dir, self.cache_dir, self.logs_dir, self.report_dir, self.data_dir,
                self.final_dir, self.probe_file)
