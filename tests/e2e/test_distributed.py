"""Keras Tuner's chief/worker mode on loopback: one chief, two workers, one exported model."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import make_class_folders


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_share_the_search(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=6)
    run = tmp_path / "shared"
    port = _free_port()
    base = [sys.executable, "-m", "resnet_automl", "fit", str(data), "--out", str(run), "--backbone", "tiny_resnet",
            "--weights", "none", "--image-size", "32", "--epochs", "1", "--max-trials", "4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    chief_env = {**env, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port),
                 "KERASTUNER_TUNER_ID": "chief"}
    chief = subprocess.Popen(base, env=chief_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([*base, "--chief", f"127.0.0.1:{port}", "--worker-id", f"tuner{i}"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outputs = [w.communicate(timeout=420) for w in workers]
        chief_out, chief_err = chief.communicate(timeout=240)
    finally:
        for proc in [chief, *workers]:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(workers, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "worker done" in out
    assert chief.returncode == 0, chief_err[-3000:]
    per_worker = [json.loads((run / "tuner" / f"trial_seconds-tuner{i}.json").read_text()) for i in range(2)]
    assert all(len(times) >= 1 for times in per_worker), per_worker
    assert sum(len(times) for times in per_worker) == 4
    assert not (run / "tuner" / "trial_seconds-chief.json").exists()  # the chief runs no trial
    assert sorted(p.name for p in (run / "model").iterdir() if p.name.isdigit()) == ["1"]
    record = json.loads((run / "run.json").read_text())
    assert record["role"] == "chief" and record["stages_done"][-1] == "report"
