"""Ctrl-C that is never lost.

Keras swallows a KeyboardInterrupt that lands inside some of its bare `except:` blocks (while a
new trial's training step is traced), and the run then carries on. `fit` therefore installs a
SIGINT handler that also records the request, and the search and training check it at trial,
batch and epoch boundaries, where stopping is safe: Keras Tuner re-queues the running trial on
resume.
"""
from __future__ import annotations

import contextlib
import signal
import threading

import keras

_requested = threading.Event()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed during this fit."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def remember_ctrl_c():
    """Within the block, SIGINT both raises KeyboardInterrupt and is remembered for `check()`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()

    def handler(signum, frame):
        _requested.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()


class StopOnCtrlC(keras.callbacks.Callback):
    """Re-raise a remembered Ctrl-C at the next batch or epoch boundary."""

    def on_train_batch_end(self, batch, logs=None):
        check()

    def on_epoch_end(self, epoch, logs=None):
        check()
