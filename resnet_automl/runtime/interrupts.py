"""A request to stop (Ctrl-C, SIGTERM, SIGHUP) that is never lost and always stops cleanly.

Keras swallows a KeyboardInterrupt that lands inside some of its bare `except:` blocks (while a
new trial's training step is traced), and one raised inside a callback from TensorFlow's C++ code
is printed as an ignored exception. `fit` therefore installs handlers for the stop signals
(`STOP_SIGNALS`: SIGINT from Ctrl-C, SIGTERM from a container runtime, a batch scheduler or a
preemptible machine before it kills, SIGHUP from a closed terminal) that only record the first
one; the search and training check it at batch, epoch, trial and stage boundaries, where stopping
is safe (Keras Tuner re-queues the running trial on resume), and raise `StopRequested`, a
KeyboardInterrupt that carries the signal. A second signal stops at once.
"""
from __future__ import annotations

import contextlib
import signal
import threading

import keras

#: The signals that ask a fit to stop cleanly (SIGHUP does not exist on Windows).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

_requested = threading.Event()
_received = [signal.SIGINT]


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; the fit stopped at a safe point and a rerun resumes.

    Attributes:
        signum: int, the signal (SIGINT, SIGTERM or SIGHUP).
    """

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 128 + its number (130, 143, 129)."""
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


def check() -> None:
    """Raise `StopRequested` if a stop signal arrived during this fit."""
    if _requested.is_set():
        raise StopRequested(_received[0])


def request_stop(signum: int = signal.SIGINT) -> None:
    """Record a stop request as the signal handler does (for a caller that stops a fit from another thread)."""
    _received[0] = signum
    _requested.set()


@contextlib.contextmanager
def remember_stop_signals():
    """Within the block, the first stop signal is remembered for `check()`; a second one raises at once.
    Outside the main thread (where Python cannot install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()

    def handler(signum, frame):
        if _requested.is_set():  # a second signal stops at once
            raise StopRequested(signum)
        request_stop(signum)  # the first stops at the next safe point (batch, epoch, trial, stage)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
        _requested.clear()


class StopOnCtrlC(keras.callbacks.Callback):
    """Re-raise a remembered stop signal at the next batch or epoch boundary.

    The batch check runs when a batch begins, not when one ends: Keras turns its asynchronous
    dispatch off (JAX, PyTorch) when any callback has a batch-end hook that is not `async_safe`,
    and then waits for every step to finish before it prepares the next batch.
    """

    def on_train_batch_begin(self, batch, logs=None):
        check()

    def on_epoch_end(self, epoch, logs=None):
        check()
