"""One exception family for resnet-automl.

Every error a user can cause derives from `ResNetAutoMLError` and from the builtin it means, so
`except ValueError` keeps working for callers that do not know this package. The CLI turns any
`ResNetAutoMLError` into one paragraph on stderr and exit status 2.
"""


class ResNetAutoMLError(Exception):
    """Base class of every error this package raises on purpose."""


class DataError(ResNetAutoMLError, ValueError):
    """The dataset is missing, malformed or too small; the message names the path and the fix."""


class ConfigError(ResNetAutoMLError, ValueError):
    """An argument, recipe key or budget value is invalid; the message names it and the fix."""


class WeightsError(ResNetAutoMLError, RuntimeError):
    """Pretrained weights cannot be found, fetched or loaded."""


class ExportError(ResNetAutoMLError, RuntimeError):
    """The SavedModel could not be written or failed verification."""


class ExportCheckError(ExportError):
    """The exported model does not agree with the trained one; it was moved aside, and a rerun exports again."""


class OutputDirError(ResNetAutoMLError, OSError):
    """The run directory cannot be written."""


class RunInUseError(OutputDirError):
    """Another process holds the run directory's lock; the message names it and what to do."""


class RunStateError(ResNetAutoMLError, ValueError):
    """A file the package reads back from a run folder is damaged; the message names it and what to do."""
