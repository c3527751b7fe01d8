"""Library start-up noise filtered (not hidden), and undone when a block ends.

Library noise. TensorFlow's C++ runtime prints its start-up log (oneDNN, CUDA probing, CPU
instruction sets) straight to file descriptor 2 while it is imported and while it first looks for
GPUs, before `TF_CPP_MIN_LOG_LEVEL` can take effect for some of it. `filtered_native_stderr`
captures that descriptor around those two moments only, drops the lines that match `NOISE`, and
writes every other line back, so a real warning still reaches the user. `quiet_libraries` also
sets the environment variables, Python warning filters and logger levels of `QUIET_ENVIRONMENT`,
`IGNORED_WARNINGS` and `QUIET_LOGGERS` for the length of a block and undoes them at its end, so a
caller's process is left as it was; `set_enabled` applies the same settings for the rest of the
process (the command line owns its process). `--debug` (`enabled=False`) turns all filtering off.

Used by `pipeline.fit` (around a fit) and the CLI (for its whole process); the package's own
logging is `runtime.console`'s.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

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
#: Environment variables set when they are unset: TensorFlow's C++ log and gRPC's log, errors only.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}
#: Library loggers and the level they are set to: TensorFlow's Python logger carries retracing
#: hints and deprecation notes, never anything about the user's data.
QUIET_LOGGERS = {"tensorflow": logging.ERROR}

_enabled = True


@dataclass
class _Changes:
    """What one application of the quiet settings changed, to undo exactly that."""

    environment: dict = field(default_factory=dict)  # name -> the value set (each was unset before)
    loggers: dict = field(default_factory=dict)  # name -> (previous level, level set)
    filters_before: list = field(default_factory=list)
    filters_after: list = field(default_factory=list)


def _apply_quiet() -> _Changes:
    """Set the quiet environment, warning filters and logger levels; return what changed."""
    changes = _Changes()
    for name, value in QUIET_ENVIRONMENT.items():
        if name not in os.environ:
            os.environ[name] = value
            changes.environment[name] = value
    changes.filters_before = list(warnings.filters)
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    changes.filters_after = list(warnings.filters)
    for name, level in QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.level != level:
            changes.loggers[name] = (logger.level, level)
            logger.setLevel(level)
    return changes


def _set_warning_filters(entries: list) -> None:
    """Replace the contents of `warnings.filters` with `entries`, as `warnings.catch_warnings` does."""
    warnings.filters[:] = entries
    mutated = getattr(warnings, "_filters_mutated", None)  # invalidates the per-module warning caches
    if mutated is not None:
        mutated()


def _undo_quiet(changes: _Changes) -> None:
    """Undo `changes`, leaving alone any setting that code in between changed again."""
    for name, value in changes.environment.items():
        if os.environ.get(name) == value:
            del os.environ[name]
    current = list(warnings.filters)
    if current == changes.filters_after:
        restored = changes.filters_before
    else:  # filters were added in between (a library's import): keep them, drop only the ones added here
        restored = list(current)
        for entry in changes.filters_after:
            if entry not in changes.filters_before and entry in restored:
                restored.remove(entry)
    if restored != current:
        _set_warning_filters(restored)
    for name, (previous, level) in changes.loggers.items():
        logger = logging.getLogger(name)
        if logger.level == level:
            logger.setLevel(previous)


def set_enabled(enabled: bool) -> None:
    """Filter library noise for the rest of the process (True, the default) or show everything (False).

    Args:
        enabled: bool. True sets `QUIET_ENVIRONMENT` (variables that are unset only),
            `IGNORED_WARNINGS` and `QUIET_LOGGERS` for good and turns `filtered_native_stderr` on;
            False turns `filtered_native_stderr` off and changes nothing else (`--debug`).

    For the command line, which owns its process. A library call uses `quiet_libraries`, which
    undoes its settings when it ends.
    """
    global _enabled
    _enabled = bool(enabled)
    if enabled:
        _apply_quiet()


def is_enabled() -> bool:
    """bool: whether library noise is filtered now (True unless `set_enabled(False)` or
    `quiet_libraries(False)` turned it off)."""
    return _enabled


@contextlib.contextmanager
def quiet_libraries(enabled: bool = True) -> Iterator[None]:
    """Filter library noise within the block, then put back exactly what was changed.

    Args:
        enabled: bool, True (the default) to filter: within the block, the variables of
            `QUIET_ENVIRONMENT` that are unset are set, the `IGNORED_WARNINGS` are ignored, the
            loggers of `QUIET_LOGGERS` are set to their level and `filtered_native_stderr` filters.
            False shows everything within the block (`--debug`), changing only `is_enabled()`.

    On exit, each variable set here is removed again, the warning filters added here are removed
    (`warnings.filters` is the same list as before the block when nothing else changed it in
    between; filters that other code added within the block are kept), each logger gets its
    previous level back and `is_enabled()` its previous value. A setting that code within the
    block changed again is left as that code set it. A library that read a variable within the
    block (TensorFlow reads `TF_CPP_MIN_LOG_LEVEL` once, when first imported) keeps what it read.

    Example:
        >>> with quiet_libraries(is_enabled()):
        ...     load_backend()
    """
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    changes = _apply_quiet() if enabled else None
    try:
        yield
    finally:
        if changes is not None:
            _undo_quiet(changes)
        _enabled = previous


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Within the block, lines written to descriptor 2 that match `NOISE` are dropped; the rest
    are written back when the block ends. Does nothing when `is_enabled()` is False or the process
    has no descriptor 2."""
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
