"""The run directory: default name, preparation and reset, its lock, rejected exports, version stamps.

Its paths are `runtime.run_folder.RunLayout`'s; run.json is `runtime.run_record.RunRecord`."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

from resnet_automl.data.scan import MANIFEST_SUFFIXES
from resnet_automl.errors import OutputDirError, RunInUseError
from resnet_automl.runtime.run_folder import LOCK_FILE, RunLayout


def distributed_role() -> str:
    """"chief", "worker" or "single", from Keras Tuner's environment variables.

    Distributed tuning is Keras Tuner's own: `KERASTUNER_ORACLE_IP`/`KERASTUNER_ORACLE_PORT` name the
    chief's oracle server and `KERASTUNER_TUNER_ID` is "chief" for it and unique per worker.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def move_to_rejected(out: Path, path: Path, name: str) -> Path:
    """Move `path` (an export that failed its check) to `DIR/rejected/<name>-<time>` and return where it went."""
    target = RunLayout(out).rejected_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))
    return target


def default_out_dir(source) -> Path:
    """`runs/<dataset folder name>` (`runs/<tfds name>`; `runs/<folder>-<stem>` for a manifest such as
    photos/labels.csv), so the same command resumes."""
    name = str(source)
    path = Path(name).resolve()
    if name.startswith("tfds:"):
        name = name.split(":", 1)[1]
    else:
        name = f"{path.parent.name}-{path.stem}" if path.suffix.lower() in MANIFEST_SUFFIXES else path.name
    return Path("runs") / (name.replace("/", "_") or "dataset")


def prepare_out_dir(out, overwrite: bool = False) -> Path:
    """Create the run directory, check it is writable and has room, and reset it when `overwrite`.

    Call `reset_out_dir` instead of `overwrite=True` once the run's lock is held (`run_lock`), so
    that a second process never wipes a folder another one is writing.
    """
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
        reset_out_dir(out)
    return out


def reset_out_dir(out: Path) -> None:
    """Remove what `--overwrite` starts again from (`RunLayout.resettable`); exported model versions stay."""
    for target in RunLayout(out).resettable:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


@contextlib.contextmanager
def run_lock(out, owner: str = "run"):
    """Hold an exclusive OS lock on the run directory `out` for the block.

    Args:
        out: the run directory (it must exist).
        owner: str, the lock's name: "run" for a fit, export or evaluation that owns the folder; a
            distributed worker passes its own name ("worker-<id>"), since the chief owns the run.

    The lock is `fcntl.flock` on `out/.lock` (`.lock-<owner>` for other owners): the OS releases it
    when the process ends, even killed by SIGKILL, so no stale lock ever blocks a rerun. The
    holder's pid, host and start time are written into the lock file for the message a second
    process gets (`RunInUseError`, exit 2). Where `fcntl` does not exist (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(out) / (LOCK_FILE if owner == "run" else f"{LOCK_FILE}-{owner}")
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            raise RunInUseError(_in_use_message(Path(out), handle.read())) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock


def _in_use_message(out: Path, holder_text: str) -> str:
    try:
        holder = json.loads(holder_text)
        who = f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        who = "another process"
    return (f"The run folder {str(out)!r} is in use by {who}: another fit, export or evaluation is writing it. "
            "Wait for it to finish, or pass another --out.")


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
