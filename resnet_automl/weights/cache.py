"""Where downloaded and converted weight files live, and how long a download may stall."""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

#: Seconds one network read may stall before a download of weights gives up.
DOWNLOAD_TIMEOUT_S = 30


def keras_cache_dir() -> Path:
    """The folder Keras caches weight files in: `$KERAS_HOME/models` or `~/.keras/models`."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "models"


@contextmanager
def socket_timeout(seconds: float):
    """Set the default socket timeout to `seconds` (float) for the block, then restore it."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
