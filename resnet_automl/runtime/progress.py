"""A live progress line for trials and the final training, on a terminal only.

On a terminal, `LiveProgress` keeps one line up to date with `rich` (which Keras installs):
epoch i/N, step j/M, loss, the latest validation metric, and the time left in this training and
in the fit's budget. Elsewhere (files, CI, pipes) it prints nothing, and the one-line-per-stage
log stays the only output.
"""
from __future__ import annotations

import sys
import time

import keras
from rich.text import Text

#: Redraws per second at most (a step on a GPU takes milliseconds).
REFRESH_PER_SECOND = 4
#: The parts of the progress line left out, in this order, when it is wider than the terminal;
#: "[label] epoch i/N" and the time left always stay.
DROPPED_FIRST = ("budget", "loss", "step", "metric")


def on_terminal(stream=None) -> bool:
    """True when `stream` (default stdout) is an interactive terminal."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _fit(text: str, width: int) -> str:
    """`text` cut to at most `width` characters, ending in "…" when cut."""
    if len(text) <= width:
        return text
    return text[:width - 1] + "…" if width >= 1 else ""


def _duration(seconds: float) -> str:
    if seconds == float("inf") or seconds != seconds:
        return "-"
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


class LiveProgress(keras.callbacks.Callback):
    """One live line for one training (a trial or the final training).

    Args:
        label: str, e.g. "trial 3/6" or "final".
        epochs: int, planned epochs.
        budget_left: callable returning the seconds left in the fit's budget (inf without one),
            or None.
        metric: str, the validation metric shown. Defaults to "val_accuracy".
        console: a `rich.console.Console`, or None for one on stdout.

    `async_safe`: its batch-end hook (loss and step on the line) may run in Keras' callback thread,
    so the live line does not make Keras wait for each step (see `callbacks.StopOnNaN`); rich's
    `Live` updates under a lock.
    """

    async_safe = True

    def __init__(self, label: str, epochs: int, budget_left=None, metric: str = "val_accuracy", console=None):
        super().__init__()
        self.label, self.epochs, self.budget_left, self.metric = label, int(epochs), budget_left, metric
        self.console = console
        self._live = None
        self._epoch, self._steps, self._last_draw = 0, None, 0.0
        self._loss, self._val = None, None
        self._started = self._epoch_started = 0.0
        self._epoch_seconds = []

    def __deepcopy__(self, memo):  # Keras Tuner deep-copies callbacks per trial; the live display is not copyable
        return LiveProgress(self.label, self.epochs, self.budget_left, self.metric, self.console)

    def line(self, step: int = 0, width: int | None = None) -> str:
        """The text of the progress line at `step` of the current epoch.

        Args:
            step: int, steps done in the current epoch. Defaults to 0.
            width: int or None, the most characters the line may take. Parts are left out in the
                order of `DROPPED_FIRST` (the fit's budget, the loss, the step, the validation metric)
                until the line fits; "[label] epoch i/N" and the time left stay, cut to end in "…"
                if even they do not fit. None (the default) gives the whole line.

        Returns:
            str, the parts joined by two spaces.
        """
        parts = {"head": f"[{self.label}] epoch {self._epoch + 1}/{self.epochs}"}
        if self._steps:
            parts["step"] = f"step {min(step, self._steps)}/{self._steps}"
        if self._loss is not None:
            parts["loss"] = f"loss {self._loss:.4f}"
        if self._val is not None:
            parts["metric"] = f"{self.metric} {self._val:.4f}"
        parts["left"] = f"{_duration(self.seconds_left(step))} left"
        if self.budget_left is not None and self.budget_left() != float("inf"):
            parts["budget"] = f"budget {_duration(self.budget_left())} left"
        text = "  ".join(parts.values())
        if width is None:
            return text
        for name in DROPPED_FIRST:
            if len(text) <= width:
                break
            parts.pop(name, None)
            text = "  ".join(parts.values())
        return _fit(text, width)

    def seconds_left(self, step: int = 0) -> float:
        """Estimated seconds until this training ends (from the epochs and steps timed so far)."""
        elapsed = time.time() - self._epoch_started
        if self._epoch_seconds:
            per_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
        elif step and self._steps:
            per_epoch = elapsed / step * self._steps
        else:
            return float("nan")
        return max(0.0, per_epoch - elapsed) + per_epoch * (self.epochs - self._epoch - 1)

    def _draw(self, step: int, force: bool = False) -> None:
        now = time.time()
        if self._live is None or (not force and now - self._last_draw < 1.0 / REFRESH_PER_SECOND):
            return
        self._last_draw = now
        width = max(1, self.console.width - 1)  # a line as wide as the terminal wraps on some terminals
        # plain text: "[trial 1/6]" is no markup
        self._live.update(Text(self.line(step, width), no_wrap=True, overflow="ellipsis"), refresh=True)

    def on_train_begin(self, logs=None):
        from rich.console import Console
        from rich.live import Live

        self._started = time.time()
        self._steps = self.params.get("steps") if self.params else None
        self.console = self.console or Console()
        self._live = Live(Text(""), console=self.console, transient=True, auto_refresh=False)
        self._live.start()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_started = epoch, time.time()
        self._draw(0, force=True)

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])
        self._draw(batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_seconds.append(time.time() - self._epoch_started)
        if logs and self.metric in logs:
            self._val = float(logs[self.metric])
        self._draw(self._steps or 0, force=True)

    def on_train_end(self, logs=None):
        if self._live is not None:
            self._live.stop()
            self._live = None


def live_progress(label: str, epochs: int, budget_left=None, metric: str = "val_accuracy", enabled=None):
    """A `LiveProgress` when stdout is a terminal (or `enabled`), else None."""
    if enabled is None:
        enabled = on_terminal()
    return LiveProgress(label, epochs, budget_left, metric) if enabled else None
