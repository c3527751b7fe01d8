"""What a user sees: a quiet first screen, a live line per trial on a terminal, plain lines elsewhere.

Also: the noise filters and the package's console logging leave the caller's process as they found it,
and the live line never wraps.
"""
from __future__ import annotations

import io
import logging
import os
import pty
import re
import subprocess
import sys
import time
import warnings

import pytest
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_pipe_gets_plain_lines_only(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=6)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(_fit_command(data, tmp_path / "run"), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[trial 0]" in proc.stdout and "epoch 1/3" not in proc.stdout and "\x1b[" not in proc.stdout
    for noise in NOISE:
        assert noise not in proc.stdout + proc.stderr, (noise, proc.stderr[-2000:])


# ---- quiet_libraries: the caller's environment, warning filters and logger levels come back as they were


def _process_state() -> tuple:
    from resnet_automl.runtime import quiet

    return (dict(os.environ), list(warnings.filters),
            {name: logging.getLogger(name).level for name in quiet.QUIET_LOGGERS}, quiet.is_enabled())


def _ignored(message: str) -> bool:
    """True when the first filter matching a UserWarning `message` ignores it."""
    for action, pattern, category, module, lineno in warnings.filters:
        if issubclass(UserWarning, category) and (pattern is None or pattern.match(message)) \
                and module is None and lineno == 0:
            return action == "ignore"
    return False


def test_quiet_libraries_restores_exactly_what_it_changed(monkeypatch):
    from resnet_automl.runtime import quiet

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    previous_level = logging.getLogger("tensorflow").level
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        before = _process_state()
        with quiet.quiet_libraries():
            assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and os.environ["GRPC_VERBOSITY"] == "ERROR"
            assert logging.getLogger("tensorflow").level == logging.ERROR
            assert _ignored("`shuffle=True` was passed, but will be ignored")
            assert not _ignored("a warning about the user's data")
            assert quiet.is_enabled()
        assert _process_state() == before
    finally:
        logging.getLogger("tensorflow").setLevel(previous_level)


def test_quiet_libraries_keeps_the_callers_settings_and_restores_after_an_error(monkeypatch):
    from resnet_automl.runtime import quiet

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the caller wants TensorFlow's whole log
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    before = _process_state()
    with pytest.raises(RuntimeError), quiet.quiet_libraries():
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
        raise RuntimeError("boom")
    assert _process_state() == before


def test_quiet_libraries_leaves_what_code_inside_set(monkeypatch):
    from resnet_automl.runtime import quiet

    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    tf_logger = logging.getLogger("tensorflow")
    previous_level = tf_logger.level
    filters_before = list(warnings.filters)
    try:
        with quiet.quiet_libraries():
            warnings.filterwarnings("ignore", message="a library's own filter")  # e.g. added on import
            os.environ["GRPC_VERBOSITY"] = "DEBUG"
            tf_logger.setLevel(logging.DEBUG)
        assert os.environ["GRPC_VERBOSITY"] == "DEBUG" and tf_logger.level == logging.DEBUG
        assert _ignored("a library's own filter")
        assert not _ignored("`shuffle=True` was passed")
        assert [f for f in warnings.filters if not _matches(f, "a library's own filter")] == filters_before
    finally:
        tf_logger.setLevel(previous_level)


def _matches(entry, message) -> bool:
    return entry[1] is not None and entry[1].match(message) is not None


def test_quiet_libraries_nested_and_disabled(monkeypatch):
    from resnet_automl.runtime import quiet

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    before = _process_state()
    with quiet.quiet_libraries():
        inner_before = _process_state()
        with quiet.quiet_libraries():
            pass
        assert _process_state() == inner_before
        with quiet.quiet_libraries(False):  # --debug: everything shown, nothing else changed
            assert not quiet.is_enabled()
            with quiet.filtered_native_stderr():
                pass
        assert quiet.is_enabled()
    assert _process_state() == before


def test_set_enabled_still_filters_for_the_rest_of_the_process(monkeypatch):
    from resnet_automl.runtime import quiet

    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    monkeypatch.setattr(quiet, "_enabled", True)
    tf_logger = logging.getLogger("tensorflow")
    previous_level = tf_logger.level
    try:
        quiet.set_enabled(False)
        assert not quiet.is_enabled() and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        quiet.set_enabled(True)
        assert quiet.is_enabled() and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        assert tf_logger.level == logging.ERROR and _ignored("`shuffle=True` was passed")
    finally:
        tf_logger.setLevel(previous_level)


# ---- the package's logging: plain lines on the console within log_to_console, nothing left behind


def _logger_state() -> tuple:
    logger = logging.getLogger("resnet_automl")
    return list(logger.handlers), logger.level, logger.propagate


def test_get_logger_names():
    from resnet_automl.runtime.console import LOGGER_NAME, get_logger

    assert LOGGER_NAME == "resnet_automl"
    assert get_logger() is logging.getLogger("resnet_automl") is get_logger("resnet_automl")
    assert get_logger("resnet_automl.pipeline.fit").name == "resnet_automl.pipeline.fit"
    assert get_logger("search").name == "resnet_automl.search"
    assert get_logger("search").parent is logging.getLogger("resnet_automl")


@pytest.mark.parametrize("verbose, shown", [(1, ["stage one", "careful"]), (2, ["stage one", "careful"]),
                                            (0, ["careful"])])
def test_log_to_console_prints_plain_lines_and_removes_itself(verbose, shown):
    from resnet_automl.runtime.console import get_logger, log_to_console

    before = _logger_state()
    stream = io.StringIO()
    with log_to_console(verbose, stream) as handler:
        assert handler in logging.getLogger("resnet_automl").handlers
        assert isinstance(handler, logging.StreamHandler)
        assert logging.getLogger("resnet_automl").propagate is False
        get_logger("pipeline").debug("debug detail")
        get_logger("pipeline").info("stage one")
        get_logger().warning("careful")
    get_logger().warning("after the block")
    assert stream.getvalue().splitlines() == shown
    assert _logger_state() == before


def test_log_to_console_follows_stdout_and_keeps_the_callers_handlers(capsys):
    from resnet_automl.runtime.console import get_logger, log_to_console

    logger = logging.getLogger("resnet_automl")
    records = []
    mine = logging.Handler()
    mine.emit = records.append
    logger.addHandler(mine)
    try:
        before = _logger_state()
        with pytest.raises(KeyError), log_to_console(1):
            with log_to_console(1):  # nested: the same handler, each line once
                get_logger("fit").info("one line")
            raise KeyError("stop")
        assert _logger_state() == before
    finally:
        logger.removeHandler(mine)
    assert capsys.readouterr().out == "one line\n"
    assert [r.getMessage() for r in records] == ["one line"]


def test_log_to_console_keeps_a_lower_level_and_can_propagate():
    from resnet_automl.runtime.console import get_logger, log_to_console

    logger = logging.getLogger("resnet_automl")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    records = []
    catcher = logging.Handler()
    catcher.emit = records.append
    logging.getLogger().addHandler(catcher)
    try:
        stream = io.StringIO()
        with log_to_console(1, stream, propagate=True):
            assert logger.level == logging.DEBUG
            get_logger().debug("for the caller's handlers only")
            get_logger().info("shown")
        assert stream.getvalue() == "shown\n"
        assert [r.getMessage() for r in records] == ["for the caller's handlers only", "shown"]
        assert logger.level == logging.DEBUG and logger.propagate is True
    finally:
        logging.getLogger().removeHandler(catcher)
        logger.setLevel(previous)


# ---- the live line fits the terminal: no wrapped line, no staircase on redraws

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _drive(progress, epochs: int = 2, steps: int = 12345) -> None:
    progress.set_params({"epochs": epochs, "steps": steps, "verbose": 0})
    progress.on_train_begin()
    for epoch in range(epochs):
        progress.on_epoch_begin(epoch)
        for batch in (0, 99, steps - 1):
            progress._last_draw = 0.0  # every batch end redraws
            progress.on_train_batch_end(batch, {"loss": 123.456789})
        progress.on_epoch_end(epoch, {"val_accuracy": 0.987654})
    progress.on_train_end()


@pytest.mark.parametrize("width, label", [(80, "trial 12 (13/20)"), (40, "trial 3 (4/6)")])
def test_live_line_fits_the_console_width(width, label):
    from rich.cells import cell_len
    from rich.console import Console

    from resnet_automl.runtime.progress import LiveProgress

    console = Console(width=width, file=io.StringIO(), force_terminal=True)
    progress = LiveProgress(label, 40, budget_left=lambda: 5000.0, console=console)
    _drive(progress)
    screen = ANSI.sub("", console.file.getvalue())
    lines = [line for line in re.split(r"[\r\n]", screen) if line.strip()]
    assert len(lines) >= 2 * 5, lines  # per epoch: its start, three batch ends and its end
    assert all(line.startswith(f"[{label}] epoch ") and line.endswith(" left") for line in lines), lines
    assert all(cell_len(line) < width for line in lines), [line for line in lines if cell_len(line) >= width]
    assert len(progress.line(100)) > width  # the whole line would have wrapped


def test_line_drops_the_budget_then_the_loss_first():
    from resnet_automl.runtime.progress import LiveProgress

    progress = LiveProgress("final", 30, budget_left=lambda: 600.0)
    progress._epoch, progress._steps, progress._loss, progress._val = 4, 500, 0.5, 0.75
    progress._epoch_seconds = [10.0]
    full = progress.line(250)
    assert full.startswith("[final] epoch 5/30  step 250/500  loss 0.5000  val_accuracy 0.7500  ")
    assert full.endswith("left  budget 10:00 left")
    without_budget = progress.line(250, len(full) - 1)
    assert "budget" not in without_budget and "loss 0.5000" in without_budget
    without_loss = progress.line(250, len(without_budget) - 1)
    assert "loss" not in without_loss and "step 250/500" in without_loss and "val_accuracy" in without_loss
    essential = progress.line(250, 10)
    assert len(essential) == 10 and essential.endswith("…") and essential.startswith("[final]")
    for width in range(1, 120):
        line = progress.line(250, width)
        assert len(line) <= width
        if width >= len("[final] epoch 5/30  4:50 left"):
            assert line.startswith("[final] epoch 5/30") and line.endswith(" left"), (width, line)


def test_fit_log_callable_receives_the_lines_and_the_logger_is_left_as_it_was():
    from resnet_automl.pipeline.fit import _messages_to

    logger = logging.getLogger("resnet_automl")
    before = (logger.level, logger.propagate, list(logger.handlers))
    lines = []
    with _messages_to(lines.append, verbose=0):
        logging.getLogger("resnet_automl.pipeline.run").info("[data] a line")
    logging.getLogger("resnet_automl.pipeline.run").info("after the block")
    assert lines == ["[data] a line"]
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
