"""Faults: NaN and out-of-memory trials, kills and Ctrl-C during the search, odd inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
from conftest import batches, make_class_folders, write_image
from PIL import Image

from resnet_automl.data import prepare_data, scan_folder
from resnet_automl.errors import DataError
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.search.space import SearchSpace, TrialSettings
from resnet_automl.search.tuner import make_tuner, trials_table


def _hypermodel(**extra):
    return ResNetHyperModel(SearchSpace(["tiny_resnet"], [5]),
                            TrialSettings(num_classes=3, image_size=32, epochs=1, steps_per_epoch=2, batch_size=8),
                            **extra)


@pytest.fixture
def tiny_data(tmp_path):
    splits = prepare_data(make_class_folders(tmp_path / "data", per_class=6))
    return batches(splits.train, 32, 8, shuffle=True), batches(splits.val, 32, 8)


class _OutOfMemoryOnce(keras.callbacks.Callback):
    raised = 0

    def on_train_batch_begin(self, batch, logs=None):
        if _OutOfMemoryOnce.raised == 0:
            _OutOfMemoryOnce.raised += 1
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor (simulated)")


def test_out_of_memory_retries_once_at_half_batch(tiny_data, caplog):
    train, val = tiny_data
    hypermodel, hp = _hypermodel(), kt.HyperParameters()
    history = hypermodel.fit(hp, hypermodel.build(hp), train, validation_data=val, epochs=1, verbose=0,
                             callbacks=[_OutOfMemoryOnce()])
    assert _OutOfMemoryOnce.raised == 1 and len(history.history["loss"]) == 1
    assert "retrying once at batch 4" in caplog.text


class _NaNInFirstTrial(keras.callbacks.Callback):
    trials_seen = []

    def on_train_begin(self, logs=None):
        _NaNInFirstTrial.trials_seen.append(1)

    def on_epoch_end(self, epoch, logs=None):
        if len(_NaNInFirstTrial.trials_seen) == 1:
            logs["loss"] = float("nan")


@pytest.mark.slow  # a fit of 15-40 s: the default suite stays under 10 minutes on 2 cores
@pytest.mark.parametrize("max_trials", [2, 1])  # 1: a search with no completed trial gets one more
def test_nan_trial_is_marked_failed_and_the_search_goes_on(tiny_data, tmp_path, max_trials):
    train, val = tiny_data
    _NaNInFirstTrial.trials_seen = []
    tuner = make_tuner("random", _hypermodel(), objective="val_accuracy", max_trials=max_trials, directory=tmp_path)
    tuner.search(train, validation_data=val, epochs=1, verbose=0, callbacks=[_NaNInFirstTrial()])
    table = trials_table(tuner)
    assert [row["status"] for row in table] == ["FAILED", "COMPLETED"]
    assert "NaN" in table[0]["message"] and table[0]["seconds"] is not None


def _wait_for_trials(run: Path, count: int, proc, timeout: float = 240) -> None:
    path = run / "tuner" / "trial_seconds-tuner0.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"fit ended early: {proc.stderr.read()[-2000:]}")
        if path.exists() and len(json.loads(path.read_text() or "{}")) >= count:
            return
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"no {count} trial(s) within {timeout} s")


@pytest.mark.slow
def test_sigkill_and_ctrl_c_during_search_then_resume(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "resnet_automl", "fit", str(data), "--out", str(run), "--backbone",
               "tiny_resnet", "--weights", "none", "--image-size", "32", "--epochs", "2", "--max-trials", "4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_trials(run, 1, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    kept = set(json.loads((run / "tuner" / "trial_seconds-tuner0.json").read_text()))

    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_trials(run, len(kept) + 1, second)
    second.send_signal(signal.SIGINT)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err and "Traceback" not in err

    third = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert third.returncode == 0, third.stderr[-2000:]
    oracle = json.loads((run / "tuner" / "oracle.json").read_text())
    record = json.loads((run / "run.json").read_text())
    assert len(record["trials"]) == 4
    assert kept <= set(json.loads((run / "tuner" / "trial_seconds-tuner0.json").read_text()))
    assert len(oracle["end_order"]) == 4 and (run / "model" / "1" / "saved_model.pb").exists()


@pytest.mark.parametrize("make,reason", [
    (lambda d: write_image(d / "tiny.png", size=1), None),
    (lambda d: Image.new("RGB", (4000, 3000), (200, 10, 10)).save(d / "huge.jpg", quality=30), None),
    (lambda d: Image.new("P", (32, 32)).save(d / "palette.gif"), None),
    (lambda d: (d / "sub" / "deeper").mkdir(parents=True) or write_image(d / "sub" / "deeper" / "n.png"), None),
    (lambda d: (d / ".DS_Store").write_bytes(b"\0\0"), "hidden file"),
    (lambda d: (d / "Thumbs.db").write_bytes(b"\0\0"), "not an image file extension"),
])
def test_odd_files_train_or_are_skipped_with_a_reason(tmp_path, make, reason):
    root = make_class_folders(tmp_path / "data", per_class=3)
    make(root / "red")
    scan = scan_folder(root)
    if reason is None:
        assert len([1 for _, c in scan.images["all"] if c == "red"]) == 4
        splits = prepare_data(root)
        batch = batches(splits.train + splits.val + splits.test, 32, 16)[0][0]
        assert batch.shape[1:] == (32, 32, 3)
    else:
        assert any(reason in s["reason"] for s in scan.skipped)


@pytest.mark.parametrize("make,match", [
    (lambda r: make_class_folders(r, per_class=3) and write_image(r / "solo" / "1.png"),
     r"Class 'solo' has 1 readable image\(s\)"),
    (lambda r: r.mkdir(), "No class folders found"),
    (lambda r: (make_class_folders(r, per_class=3), (r / "green" / "img_0.png").unlink(),
                (r / "green" / "img_1.png").unlink(), (r / "green" / "img_2.png").unlink()),
     "No readable image in class 'green'"),
])
def test_unusable_data_stops_with_a_message(tmp_path, make, match):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=match):
        prepare_data(root)


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_swallowed_stop_signal_is_raised_again_at_the_next_boundary(signum, status):
    from resnet_automl.runtime import interrupts

    before = signal.getsignal(signum)
    with interrupts.remember_stop_signals():
        try:
            os.kill(os.getpid(), signum)
            time.sleep(1)  # the handler runs here and only records the request
        except BaseException:  # what a bare `except:` inside Keras would do with an exception
            pass
        with pytest.raises(KeyboardInterrupt) as stopped:
            interrupts.StopOnCtrlC().on_train_batch_begin(0)
        assert stopped.value.signum == signum and stopped.value.exit_status == status
        with pytest.raises(KeyboardInterrupt):  # a second signal raises at once
            os.kill(os.getpid(), signum)
            time.sleep(1)
    interrupts.check()  # outside the fit the request is forgotten
    assert signal.getsignal(signum) == before  # the caller's handler is back


class _InterruptAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize("interval,resumed_at", [(0.0, 2), (3600.0, 0)])
def test_final_training_backup_is_periodic_and_resumes(tmp_path, interval, resumed_at):
    from resnet_automl.modeling.classifier import build_classifier, compile_classifier
    from resnet_automl.training.callbacks import PeriodicBackup

    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3

    def model_and_backup():
        model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=5)
        compile_classifier(model, 1e-3, 20)
        return model, PeriodicBackup(str(tmp_path / "backup"), min_interval_s=interval)

    model, backup = model_and_backup()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[backup, _InterruptAtEpoch(1)])
    assert (tmp_path / "backup").exists() == (interval == 0.0)
    model, backup = model_and_backup()
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[backup])
    assert history.epoch[0] == resumed_at and history.epoch[-1] == 4
    assert not (tmp_path / "backup").exists()  # deleted when training ends


def _stop_when(command: list, marker: str, signum: int, env: dict) -> subprocess.CompletedProcess:
    """Run `command`, send `signum` once a line of its output starts with `marker`, and wait for it."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sent = False
    for line in proc.stdout:
        if not sent and line.startswith(marker):
            proc.send_signal(signum)
            sent = True
    err = proc.stderr.read()
    proc.wait(timeout=300)
    assert sent, f"{marker} never appeared: {err[-2000:]}"
    return subprocess.CompletedProcess(command, proc.returncode, "", err)


@pytest.mark.slow
@pytest.mark.parametrize("marker", ["[selection]", "[trial 0]", "[final]", "[export]"])
def test_sigterm_at_any_stage_stops_cleanly_and_the_rerun_ships_one_checked_version(tmp_path, marker):
    """SIGTERM (a container runtime, a scheduler, a preemptible machine) stops like Ctrl-C: exit 143, one
    line, no traceback; the rerun finishes with exactly one model version, checked and recorded."""
    data = make_class_folders(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "resnet_automl", "fit", str(data), "--out", str(run), "--backbone",
               "tiny_resnet", "--weights", "none", "--image-size", "32", "--epochs", "2", "--final-epochs", "3",
               "--max-trials", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    stopped = _stop_when(command, marker, signal.SIGTERM, env)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "stopped by SIGTERM" in stopped.stderr and "Traceback" not in stopped.stderr
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    versions = [p.name for p in (run / "model").iterdir() if p.name.isdigit()]
    record = json.loads((run / "run.json").read_text())
    assert versions == ["1"] and record["export"]["passed"] and record["version_dir"].endswith("1")
