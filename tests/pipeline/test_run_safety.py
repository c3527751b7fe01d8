"""Nothing lost, nothing wrong shipped: the run-folder lock, a failed export check, child-process errors."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from resnet_automl.cli.main import main
from resnet_automl.errors import ExportCheckError, ExportError, RunInUseError
from resnet_automl.pipeline.run_dir import run_lock

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from resnet_automl.pipeline.run_dir import run_lock
    with run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _hold_lock(folder: Path, seconds: float = 60) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), str(seconds)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_fit_into_a_folder_in_use_is_refused_with_the_holder(image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    child = _hold_lock(out)
    try:
        code = main(["fit", str(image_folder), "--out", str(out), "--backbone", "tiny_resnet", "--weights", "none",
                     "--overwrite"])
    finally:
        child.kill()
        child.wait()
    err = capsys.readouterr().err
    assert code == 2
    assert f"in use by pid {child.pid} on host" in err and "pass another --out" in err
    assert "Traceback" not in err
    assert not (out / "run.json").exists()  # refused before anything was written, --overwrite included


def test_a_lock_left_by_a_killed_process_does_not_block_the_rerun(tmp_path):
    child = _hold_lock(tmp_path)
    with pytest.raises(RunInUseError, match=f"pid {child.pid}"):
        with run_lock(tmp_path):
            pass
    child.send_signal(signal.SIGKILL)
    child.wait()
    with run_lock(tmp_path):  # the OS released it with the process
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()


def test_a_distributed_worker_takes_its_own_lock_beside_the_chiefs(tmp_path):
    with run_lock(tmp_path), run_lock(tmp_path, "worker-tuner0"):
        with pytest.raises(RunInUseError):
            with run_lock(tmp_path):
                pass


def _unexported_copy(trained_run, tmp_path: Path) -> Path:
    """A copy of the shared trained run with its export and report undone (the final weights kept)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run.paths["run_dir"], run, ignore=shutil.ignore_patterns("model", "report", ".lock*"))
    record = json.loads((run / "run.json").read_text())
    record["stages_done"] = [s for s in record["stages_done"] if s not in ("export", "report")]
    (run / "run.json").write_text(json.dumps(record))
    return run


@pytest.mark.slow  # a fit of 15-40 s: the default suite stays under 10 minutes on 2 cores
def test_a_version_renamed_into_place_but_never_recorded_is_adopted_not_doubled(trained_run, tmp_path):
    """A kill between the version's rename and run.json's record left `model/1` unrecorded: the rerun
    finds it by the final weights it was made from, checks it and records it; no second version."""
    import resnet_automl

    run = _unexported_copy(trained_run, tmp_path)
    shutil.copytree(trained_run.paths["version_dir"], run / "model" / "1")
    data = json.loads((run / "run.json").read_text())["data"]
    result = resnet_automl.fit(data, out=run, backbone="tiny_resnet", weights=None, image_size=32, epochs=1,
                               final_epochs=1, budget=resnet_automl.Budget(max_trials=2), verbose=0)
    assert sorted(p.name for p in (run / "model").iterdir() if p.name.isdigit()) == ["1"]
    assert result.report["export"]["passed"] and Path(result.paths["version_dir"]).name == "1"
    assert json.loads((run / "run.json").read_text())["version_dir"].endswith("1")


@pytest.mark.slow  # a fit of 15-40 s: the default suite stays under 10 minutes on 2 cores
def test_a_failed_export_check_fails_the_run_and_the_rerun_exports_again(trained_run, tmp_path, monkeypatch):
    import resnet_automl
    from resnet_automl.modeling.classifier import build_classifier
    from resnet_automl.pipeline import export_stage

    run = _unexported_copy(trained_run, tmp_path)
    data = json.loads((run / "run.json").read_text())["data"]
    write = export_stage._write_saved_model

    def export_another_model(ctx, run_data, final, samples):  # weights that are not the trained ones
        other = build_classifier("tiny_resnet", run_data.splits.num_classes, image_size=run_data.image_size,
                                 trainable_stages=5)
        return write(ctx, run_data, dataclasses.replace(final, model=other), samples)

    monkeypatch.setattr(export_stage, "_write_saved_model", export_another_model)
    options = {"backbone": "tiny_resnet", "weights": None, "image_size": 32, "epochs": 1, "final_epochs": 1,
               "budget": resnet_automl.Budget(max_trials=2), "verbose": 0}
    with pytest.raises(ExportCheckError, match="failed its check.*differ.*Rerun the same command"):
        resnet_automl.fit(data, out=run, **options)
    assert not any((run / "model").glob("[0-9]*"))  # nothing TF Serving would load
    assert len(list((run / "rejected").iterdir())) == 1
    report = json.loads((run / "report" / "report.json").read_text())
    assert "failed its check" in report["warnings"][0]
    assert "export" not in json.loads((run / "run.json").read_text())["stages_done"]

    monkeypatch.setattr(export_stage, "_write_saved_model", write)
    result = resnet_automl.fit(data, out=run, **options)
    assert result.report["export"]["passed"] and Path(result.paths["version_dir"]).name == "1"
    assert not result.report.get("warnings")


def test_a_failed_export_check_exits_non_zero_from_the_cli(trained_run, tmp_path, monkeypatch, capsys):
    from resnet_automl.pipeline import export_stage

    run = _unexported_copy(trained_run, tmp_path)
    monkeypatch.setattr(export_stage, "verify_export", lambda *a, **k: {
        "passed": False, "max_abs_diff": 0.28, "tolerance": 1e-4, "images": 4})
    code = main(["export", str(run)])
    err = capsys.readouterr().err
    assert code == 3 and "differ from the trained model's by up to 0.28" in err and "Traceback" not in err


def test_a_failing_tensorflow_child_reads_as_one_sentence_with_its_log(tmp_path):
    from resnet_automl.serving.savedmodel.tensorflow_process import export_in_tensorflow_process

    bogus = tmp_path / "not.weights.h5"
    bogus.write_bytes(b"no weights here")
    log = tmp_path / "logs" / "export-child.log"
    started = time.time()
    with pytest.raises(ExportError) as caught:
        export_in_tensorflow_process(bogus, tmp_path / "model", log_path=log)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert f"Its full output is in {log}" in message and "Rerun the same command" in message
    assert "Traceback" in log.read_text() and "Traceback" in caught.value.details
    assert time.time() - started < 120


@pytest.mark.slow
def test_the_same_command_twice_the_second_refused_the_first_ships_a_checked_model(tmp_path):
    from conftest import make_class_folders

    data = make_class_folders(tmp_path / "data", per_class=8)
    out = tmp_path / "same"
    command = [sys.executable, "-m", "resnet_automl", "fit", str(data), "--out", str(out), "--backbone",
               "tiny_resnet", "--weights", "none", "--image-size", "32", "--epochs", "1", "--final-epochs", "1",
               "--max-trials", "1"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "run.json").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    out_first, err_first = first.communicate(timeout=600)
    assert second.returncode == 2, second.stderr
    assert f"is in use by pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    assert first.returncode == 0, err_first[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["export"]["passed"] is True and "report" in record["stages_done"]
    assert [p.name for p in (out / "model").iterdir() if p.name.isdigit()] == ["1"]
