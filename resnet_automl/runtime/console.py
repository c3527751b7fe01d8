"""The package's own logging to the console.

Logging. The package logs through `logging.getLogger(LOGGER_NAME)` and its children
(`get_logger`). `log_to_console` prints those records as plain lines for the length of a block;
a caller can attach their own handlers to the "resnet_automl" logger instead or as well.

Library start-up noise is `runtime.quiet`'s.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

#: The package's logger; every module logs through it or one of its children.
LOGGER_NAME = "resnet_automl"
#: Format of the lines `log_to_console` prints: the message alone.
CONSOLE_FORMAT = "%(message)s"


def get_logger(name: str | None = None) -> logging.Logger:
    """The package's logger, or one of its children.

    Args:
        name: str or None. None or "" (the default) or "resnet_automl" gives the "resnet_automl"
            logger; a name under it ("resnet_automl.pipeline.fit", a module's `__name__`) gives that
            logger; any other name ("search") gives the child "resnet_automl.<name>".

    Returns:
        logging.Logger, from `logging.getLogger`.
    """
    if not name or name == LOGGER_NAME or name.startswith(LOGGER_NAME + "."):
        return logging.getLogger(name or LOGGER_NAME)
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


class _ConsoleHandler(logging.StreamHandler):
    """A `logging.StreamHandler` that writes to `stream`, or to whatever `sys.stdout` is at each
    record when `stream` is None (so output redirected later, by `rich.live.Live` or
    `contextlib.redirect_stdout`, goes where stdout goes)."""

    def __init__(self, stream: TextIO | None = None):
        self._follows_stdout = stream is None
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return sys.stdout if self._follows_stdout else self._stream

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._stream = value


def console_handler(stream: TextIO | None = None) -> logging.StreamHandler:
    """A handler that prints each record's message alone, one line each.

    Args:
        stream: a text stream, or None (the default) for `sys.stdout` as it is when each record
            is written.

    Returns:
        logging.StreamHandler with the format `CONSOLE_FORMAT` ("%(message)s") and level NOTSET;
        it is not attached to any logger.
    """
    handler = _ConsoleHandler(stream)
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    return handler


def _installed_console_handler(logger: logging.Logger) -> logging.Handler | None:
    return next((h for h in logger.handlers if getattr(h, "resnet_automl_console", False)), None)


@contextlib.contextmanager
def log_to_console(verbose: int, stream: TextIO | None = None, *, propagate: bool = False,
                   handler: logging.Handler | None = None) -> Iterator[logging.Handler]:
    """Print the package's log records as plain lines within the block.

    Args:
        verbose: int. 1 or more prints records of level INFO and above; 0 prints WARNING and above.
        stream: a text stream, or None (the default) for `sys.stdout` as it is at each record.
        propagate: bool, whether the records also reach the handlers of the root logger within the
            block. Defaults to False, so that a root handler (`logging.basicConfig`) does not print
            each line a second time.
        handler: a `logging.Handler` to attach instead of the console's (`fit`'s `log` callable),
            or None (the default) for `console_handler(stream)`.

    Yields:
        logging.Handler, the `console_handler` attached to the "resnet_automl" logger.

    Within the block the handler is attached to the "resnet_automl" logger, that logger's level
    is lowered to INFO (`verbose` >= 1) or WARNING (`verbose` 0) if it is higher, and its
    `propagate` is set to `propagate`. On exit the handler is removed and the logger's level and
    `propagate` are put back (unless code within the block set them again). Handlers a caller
    attaches to "resnet_automl" keep receiving every record. A nested call while a console handler
    is attached changes nothing and yields the outer handler.
    """
    logger = get_logger()
    outer = _installed_console_handler(logger)
    if outer is not None and handler is None:
        yield outer
        return
    level = logging.INFO if verbose >= 1 else logging.WARNING
    if handler is None:
        handler = console_handler(stream)
        handler.resnet_automl_console = True
    handler.setLevel(level)
    previous_level, previous_propagate = logger.level, logger.propagate
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    set_level = logger.level
    logger.propagate = propagate
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        if logger.level == set_level:
            logger.setLevel(previous_level)
        if logger.propagate == propagate:
            logger.propagate = previous_propagate
        handler.close()
