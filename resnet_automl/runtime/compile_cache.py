"""JAX's persistent compilation cache, kept in the run folder for the length of a fit and undone after it."""
from __future__ import annotations

from pathlib import Path

from resnet_automl.runtime.device import backend

#: Compilations shorter than this (seconds) are not written to the persistent cache.
COMPILE_CACHE_MIN_SECONDS = 0.5

#: JAX settings that `enable_compilation_cache` changes, and what they were before (empty while not enabled).
_CACHE_SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                   "jax_persistent_cache_min_entry_size_bytes")
_CACHE_SETTINGS_BEFORE: dict = {}


def enable_compilation_cache(folder) -> bool:
    """On JAX, keep XLA's compiled programs in `folder` (str or Path) so that an identical step is
    compiled once per run: the search trials from random initialisation compile the same training
    step (their learning rate is a variable set once per epoch: `final_schedule.ReplannedCosine`),
    and a resumed run reuses what the interrupted one compiled. Returns True when enabled (False on
    other backends).

    Measured (resnet20_lean at 28 px, 2-core CPU, jax 0.10.2): the first epoch of a second model
    whose step is identical took 4.3 s instead of 11-12 s; a step whose schedule differs is a
    different program and gains nothing (tests/e2e/test_backends.py checks the reuse).
    """
    if backend() != "jax":
        return False
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    Path(folder).mkdir(parents=True, exist_ok=True)
    if not _CACHE_SETTINGS_BEFORE:  # a second fit before the first one's disable keeps the caller's settings
        _CACHE_SETTINGS_BEFORE.update({name: getattr(jax.config, name) for name in _CACHE_SETTINGS})
    compilation_cache.reset_cache()  # JAX opens its cache once: another fit in this process names another folder
    for name, value in zip(_CACHE_SETTINGS, (str(folder), COMPILE_CACHE_MIN_SECONDS, 0), strict=True):
        jax.config.update(name, value)
    return True


def disable_compilation_cache() -> bool:
    """Undo `enable_compilation_cache`: JAX gets back the cache settings it had before (by default no
    persistent cache), so that what the process compiles after a fit (a `predict` on the returned
    model) is not written to the run's folder, which the fit deletes when it ends (JAX warned on every
    such compile). Returns True when there was something to undo."""
    if not _CACHE_SETTINGS_BEFORE:
        return False
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()
    for name, value in _CACHE_SETTINGS_BEFORE.items():
        jax.config.update(name, value)
    _CACHE_SETTINGS_BEFORE.clear()
    return True
