"""Ctrl-C that is never lost.

Keras swallows a KeyboardInterrupt that lands inside some of its bare `except:` blocks (while a
new trial's training step is traced), and one raised inside a callback from TensorFlow's C++ code
is printed as an ignored exception. `fit` therefore installs a SIGINT handler that only records
the first Ctrl-C; the search and training check it at batch, epoch, trial and stage boundaries,
where stopping is safe (Keras Tuner re-queues the running trial on resume). A second Ctrl-C
stops at once.
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
    """Within the block, the first SIGINT is remembered for `check()`; a second one raises at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()

    def handler(signum, frame):
        if _requested.is_set():  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        _requested.set()  # the first stops at the next safe point (batch, epoch, trial, stage)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()


class StopOnCtrlC(keras.callbacks.Callback):
    """Re-raise a remembered Ctrl-C at the next batch or epoch boundary.

    The batch check runs when a batch begins, not when one ends: Keras turns its asynchronous
    dispatch off (JAX, PyTorch) when any callback has a batch-end hook that is not `async_safe`,
    and then waits for every step to finish before it prepares the next batch.
    """

    def on_train_batch_begin(self, batch, logs=None):
        check()

    def on_epoch_end(self, epoch, logs=None):
        check()
