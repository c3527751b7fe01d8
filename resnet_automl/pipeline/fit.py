"""`fit`: data -> selection -> Keras Tuner search -> final training -> export -> report.

Every stage records itself in run.json; rerunning the same call on the same run directory skips
finished stages and lets Keras Tuner resume the search (an interrupted trial is re-queued).
"""
from __future__ import annotations

import contextlib
import logging
import os

from resnet_automl.config.budget import Budget
from resnet_automl.config.options import FitOptions, budget_from
from resnet_automl.data.scan import check_dataset_path
from resnet_automl.data.tfds_source import is_tfds_source
from resnet_automl.errors import ConfigError
from resnet_automl.pipeline.clock import Clock
from resnet_automl.pipeline.result import FitResult
from resnet_automl.pipeline.run_dir import default_out_dir, distributed_role, prepare_out_dir, reset_out_dir, run_lock
from resnet_automl.runtime import console, quiet
from resnet_automl.runtime.backend import load_backend


class _CallableHandler(logging.Handler):
    """A logging handler that passes each message (one line, no level) to a callable."""

    def __init__(self, write):
        super().__init__(logging.INFO)
        self.write = write

    def emit(self, record: logging.LogRecord) -> None:
        self.write(record.getMessage())


@contextlib.contextmanager
def _messages_to(log, verbose: int):
    """Within the block, the package's messages go to `log` (a callable) or, when it is None, to
    stdout at `verbose` >= 1; the logger is left as it was afterwards."""
    handler = None if log is None else _CallableHandler(log)
    with console.log_to_console(1 if handler else verbose, handler=handler):
        yield


def fit(data, *, out=None, budget=None, overwrite: bool = False, verbose: int = 1, log=None, recipe=None,
        **options) -> FitResult:
    """Train a classifier on `data` within `budget` and export it for TF Serving.

    Args:
        data: a folder of class subfolders, a `train/ val/ test/` tree, or "tfds:NAME".
        out: run directory. Defaults to `runs/<dataset folder name>`; rerunning resumes.
        budget: a `Budget`, a dict of its fields, or a preset name ("cpu-quick", "edge",
            "balanced", "max-accuracy"). Defaults to no limits.
        overwrite: bool, start again instead of resuming. Defaults to False.
        verbose: int, 0 silent, 1 one line per stage and trial, 2 Keras progress bars too.
        log: callable taking one line, or None (default): lines go to stdout when `verbose`. Either
            way they are records of the `logging` logger "resnet_automl", so a caller's own
            handlers see them too.
        recipe: str or None, the recipe file the options came from (recorded in run.json).
        **options: any field of `FitOptions` (backbone, weights, image_size, epochs, final_epochs,
            final_data, batch_size, tuner, trainable_stages, learning_rate_range, seed, val_fraction, test_fraction,
            export_formats).

    Example:
        >>> result = fit("photos/", budget=Budget(minutes=30), weights=None)
        >>> result.paths["version_dir"]
    """
    unknown = sorted(set(options) - set(FitOptions.field_names()))
    if unknown:
        raise ConfigError(f"Unknown fit option(s) {unknown}; valid options are {FitOptions.field_names()}.")
    opts = FitOptions(**options)
    budget = budget_from(budget)
    clock = Clock(budget)
    # library start-up noise filtered unless --debug; the caller's environment, warnings filters and
    # loggers are as they were when fit returns
    with quiet.quiet_libraries(quiet.is_enabled()), _messages_to(log, verbose):
        return _fit(data, out, opts, budget, clock, overwrite=overwrite, verbose=verbose, recipe=recipe)


def _fit(data, out, opts: FitOptions, budget: Budget, clock: Clock, *, overwrite: bool, verbose: int, recipe):
    if not is_tfds_source(data):
        check_dataset_path(data)  # before the run directory is created: a typo leaves nothing behind
    role = distributed_role()
    from resnet_automl.serving.edge.formats import edge_formats, require_modules
    from resnet_automl.weights.source import backbone_for, resolve_weights

    require_modules(edge_formats(opts.export_formats), converters=True)  # before hours of training, not after
    source = resolve_weights(opts.weights)  # a bad source stops here, before the run folder exists
    load_backend()  # Keras (and TensorFlow, on its backend) loads here, after the cheap checks
    backbone_for(source, opts.backbone)  # a run or file of another backbone than the one asked for
    out = prepare_out_dir(out or default_out_dir(data))
    from resnet_automl.pipeline.run import run_pipeline
    from resnet_automl.runtime.interrupts import remember_stop_signals

    # the chief (or a single process) owns the folder; each worker holds a lock of its own
    owner = f"worker-{os.environ.get('KERASTUNER_TUNER_ID', os.getpid())}" if role == "worker" else "run"
    with run_lock(out, owner), remember_stop_signals():
        if overwrite and role != "worker":  # only the owner may reset the shared run directory
            reset_out_dir(out)
        return run_pipeline(data, out, opts, budget, clock, source=source, verbose=verbose, recipe=recipe)


def export_run(run_dir, formats=None) -> FitResult:
    """Finish a run whose weights are trained: write the SavedModel if it is missing (trained where
    TensorFlow is not installed) and the `formats` not yet written; resume its fit with the data
    and options in run.json.

    Finished stages are skipped, so this exports, checks and reports; a run already exported in
    every format asked for is reported again as it is.

    Args:
        run_dir: the run directory.
        formats: list of names from `EXPORT_FORMATS` to add to the run's own, or None (default): the run's.
    """
    from resnet_automl.errors import OutputDirError
    from resnet_automl.runtime.run_folder import RUN_FILE, RunLayout
    from resnet_automl.runtime.run_record import RunRecord

    path = RunLayout(run_dir).run_file
    if not path.exists():
        raise OutputDirError(f"{str(run_dir)!r} is not a run directory (no {RUN_FILE}). Pass the --out folder "
                             "of a `resnet-automl fit`.")
    record = RunRecord.read(path)
    if not record.stage_done("final"):
        raise ConfigError(f"The run in {str(run_dir)!r} has no final model yet (stages done: "
                          f"{record.stages_done}). Rerun its `resnet-automl fit` command to finish it.")
    options = {key: value for key, value in record.options.items() if key in FitOptions.field_names()}
    if options.get("learning_rate_range") is not None:
        options["learning_rate_range"] = tuple(options["learning_rate_range"])
    if formats:
        options["export_formats"] = (*options.get("export_formats", ()), *formats)
    options["keep_split"] = True  # an export retrains nothing: the run's own split is the one to check on
    return fit(record.data, out=run_dir, budget=None, verbose=1, **options)


__all__ = ["FitResult", "export_run", "fit"]
