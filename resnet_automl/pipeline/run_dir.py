"""The run directory: its layout, run.json (read, update, atomic write) and version stamps."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from resnet_automl.errors import OutputDirError

RUN_FILE = "run.json"
#: Entries `--overwrite` removes. `model/` is kept: exports never overwrite a version.
RESETTABLE = ("run.json", "tuner", "cache", "logs", "report", "data", "final", "probe.json")


def distributed_role() -> str:
    """"chief", "worker" or "single", from Keras Tuner's environment variables.

    Distributed tuning is Keras Tuner's own: `KERASTUNER_ORACLE_IP`/`KERASTUNER_ORACLE_PORT` name the
    chief's oracle server and `KERASTUNER_TUNER_ID` is "chief" for it and unique per worker.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def default_out_dir(source) -> Path:
    """`runs/<dataset folder name>` (or `runs/<tfds name>`), so the same command resumes."""
    name = str(source)
    name = name.split(":", 1)[1] if name.startswith("tfds:") else Path(name).resolve().name
    return Path("runs") / (name.replace("/", "_") or "dataset")


def prepare_out_dir(out, overwrite: bool) -> Path:
    """Create the run directory, check it is writable, and reset it when `overwrite`."""
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x" * 1024)
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(f"The output folder {str(out)!r} cannot be written ({exc.strerror or exc}). "
                             "Pass --out with a writable folder that has free space.") from exc
    free = shutil.disk_usage(out).free
    if free < 200 * 2**20:
        raise OutputDirError(f"Only {free / 2**20:.0f} MiB free under {str(out)!r}; a run needs at least "
                             "200 MiB. Free some space or pass --out on another disk.")
    if overwrite:
        for name in RESETTABLE:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return out


class RunRecord:
    """run.json as a dict that is written (atomically) after every update."""

    def __init__(self, out: Path):
        self.path = Path(out) / RUN_FILE
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def update(self, **values) -> None:
        self.data.update(values)
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)

    def stage_done(self, stage: str) -> bool:
        return stage in self.data.get("stages_done", [])

    def mark_done(self, stage: str, **values) -> None:
        done = list(self.data.get("stages_done", []))
        if stage not in done:
            done.append(stage)
        self.update(stages_done=done, **values)


def versions() -> dict:
    """Versions of the stack and the Keras backend, for run.json and the report (imports nothing heavy)."""
    from importlib import metadata

    import keras

    from resnet_automl._version import __version__

    found = {"resnet_automl": __version__, "keras_backend": keras.backend.backend()}
    for key, package in (("keras", "keras"), ("keras_tuner", "keras-tuner"), ("tensorflow", "tensorflow"),
                         ("jax", "jax"), ("scikit_learn", "scikit-learn")):
        try:
            found[key] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[key] = None
    if found["tensorflow"] is None:  # the CPU-only wheel has another distribution name
        try:
            found["tensorflow"] = metadata.version("tensorflow-cpu")
        except metadata.PackageNotFoundError:
            pass
    return found
