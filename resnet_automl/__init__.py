"""resnet-automl: a folder of labelled images in, a TF Serving-ready ResNet classifier out.

Public API: `fit`, `Budget`, `FitResult`, `load_model`, `list_backbones`, `__version__`, and the errors
(`ResNetAutoMLError` and its subclasses in `resnet_automl.errors`).
Heavy modules (TensorFlow) load on first use, so `import resnet_automl` is quick.
"""
from __future__ import annotations

import importlib

from resnet_automl._version import __version__
from resnet_automl.errors import (
    ConfigError,
    DataError,
    ExportCheckError,
    ExportError,
    OutputDirError,
    ResNetAutoMLError,
    RunInUseError,
    RunStateError,
    WeightsError,
)

_LAZY = {
    "fit": ("pipeline.fit", "fit"),
    "FitResult": ("pipeline.result", "FitResult"),
    "Budget": ("config.budget", "Budget"),
    "load_model": ("serving.inference.predictor", "load_model"),
    "list_backbones": ("backbones.registry", "list_backbones"),
}

__all__ = ["Budget", "ConfigError", "DataError", "ExportCheckError", "ExportError", "FitResult", "OutputDirError",
           "ResNetAutoMLError", "RunInUseError", "RunStateError", "WeightsError", "__version__", "fit",
           "list_backbones", "load_model"]


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
