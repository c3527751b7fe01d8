"""The contract between the tuner and its hypermodel: what `TimedTuner` calls on the hypermodel
(`SearchHyperModel`) and what a fit ties a search to (`SearchHooks`), both given at construction."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class SearchHyperModel(Protocol):
    """What `TimedTuner` asks of its hypermodel, beyond Keras Tuner's `build(hp)` and
    `fit(hp, model, ...)`. `ResNetHyperModel` is the one implementation.

    Attributes:
        stage_choices: list of int, the `trainable_stages` values the search tries.
        probe_at_depth_zero: bool, a trial with every stage frozen is a linear probe (seconds), so it
            opens the search.
        reuses_models: bool, built models are kept between trials (no `clear_session` per trial).
        phases: the `TrialPhases` of the running trial, set by the tuner before each trial.
    """

    stage_choices: list
    probe_at_depth_zero: bool
    reuses_models: bool
    phases: object

    def build(self, hp): ...

    def fit(self, hp, model, *args, **kwargs): ...

    def effective_values(self, hp) -> dict:
        """The hyperparameters of `hp` that change what a trial computes."""

    def weights_metadata(self, hp) -> dict:
        """The description stored with a trial's checkpoint."""

    def uses_feature_cache(self, hp) -> bool:
        """Whether the trial of `hp` trains on cached frozen-prefix features."""

    def reusing_models(self) -> contextlib.AbstractContextManager:
        """A block within which built models are kept for later trials."""

    def restore_probe(self, model, checkpoint) -> bool:
        """Load a linear-probe trial's head from `checkpoint` into `model`; False when it is not one."""


@dataclass
class SearchHooks:
    """How a fit ties a search to its time budget and console.

    Attributes:
        should_stop: callable returning bool, or None: no new trial starts once it returns True.
            Defaults to None (never).
        live_progress: bool or None, a live progress line per trial; None: when stdout is a terminal.
            Defaults to None.
        budget_left: callable returning the seconds left in the fit's budget (shown on the live
            line), or None. Defaults to None.
        after_search_seconds: float, seconds the fit needs after the search (final training,
            export, report), for the ETA. Defaults to 0.
    """

    should_stop: Callable[[], bool] | None = None
    live_progress: bool | None = None
    budget_left: Callable[[], float] | None = None
    after_search_seconds: float = 0.0
