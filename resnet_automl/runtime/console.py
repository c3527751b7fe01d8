"""Keep the console to this package's own lines: library start-up noise is filtered, not hidden.

TensorFlow's C++ runtime prints its start-up log (oneDNN, CUDA probing, CPU instruction sets)
straight to file descriptor 2 while it is imported and while it first looks for GPUs, before
`TF_CPP_MIN_LOG_LEVEL` can take effect for some of it. `filtered_native_stderr` captures that
descriptor around those two moments only, drops the lines that match `NOISE`, and writes every
other line back, so a real warning still reaches the user. `--debug` (`set_enabled(False)`)
turns all filtering off.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

#: Start-up lines that say nothing about the user's run.
NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called",
    r"oneDNN custom operations are on",
    r"Could not find cuda drivers",
    r"failed call to cuInit",
    r"cpu_feature_guard",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions:.*rebuild TensorFlow",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
]))
#: Python warnings from libraries that do not concern the user's data or run.
IGNORED_WARNINGS = (
    r".*`shuffle=True` was passed.*",
    r".*optimal value found for dimension.*",  # scikit-learn's Gaussian process on tiny searches
    r".*Your `PyDataset` class should call `super\(\).__init__.*",
)

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Filter library noise (the default) or show everything (`--debug`)."""
    global _enabled
    _enabled = bool(enabled)
    if enabled:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        for pattern in IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        # TensorFlow's Python logger: retracing hints and deprecation notes, never about the user's data
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def is_enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def filtered_native_stderr():
    """Within the block, lines written to descriptor 2 that match `NOISE` are dropped; the rest
    are written back when the block ends."""
    if not _enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if line.strip() and not NOISE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def load_backend() -> None:
    """Import Keras (and, on its TensorFlow backend, TensorFlow) with the start-up noise filtered."""
    with filtered_native_stderr():
        import keras  # noqa: F401
