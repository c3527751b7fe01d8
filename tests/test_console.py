"""What a user sees: a quiet first screen, a live line per trial on a terminal, plain lines elsewhere."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

from conftest import make_class_folders

NOISE = ("oneDNN", "cuda drivers", "cuInit", "cpu_feature_guard", "absl::InitializeLog", "Skipping variable loading")


def _run_in_terminal(argv, env, timeout=600) -> tuple:
    """Run `argv` with a pseudo-terminal as stdin/stdout/stderr; return (exit status, everything it printed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.execvpe(argv[0], argv, env)
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def _fit_command(data, run):
    return [sys.executable, "-m", "resnet_automl", "fit", str(data), "--out", str(run), "--backbone", "tiny_resnet",
            "--weights", "none", "--image-size", "32", "--epochs", "3", "--max-trials", "2", "--minutes", "5"]


def test_a_terminal_gets_a_live_line_per_trial_and_no_library_noise(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=6)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(TERM="xterm", COLUMNS="160")
    code, screen = _run_in_terminal(_fit_command(data, tmp_path / "run"), env)
    assert code == 0, screen[-3000:]
    assert "[trial 0 (1/2)] epoch 1/3" in screen and "[trial 1 (2/2)] epoch 3/3" in screen
    assert "budget " in screen and " left" in screen and "val_accuracy" in screen
    assert "[final] epoch 1/" in screen
    assert "[trial 0]" in screen and "done: test accuracy" in screen  # the plain lines stay
    for noise in NOISE:
        assert noise not in screen, noise


def test_a_pipe_gets_plain_lines_only(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=6)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(_fit_command(data, tmp_path / "run"), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[trial 0]" in proc.stdout and "epoch 1/3" not in proc.stdout and "\x1b[" not in proc.stdout
    for noise in NOISE:
        assert noise not in proc.stdout + proc.stderr, (noise, proc.stderr[-2000:])
