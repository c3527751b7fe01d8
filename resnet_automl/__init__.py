"""resnet-automl: a folder of labelled images in, a TF Serving-ready ResNet classifier out.

Public API: `fit`, `Budget`, `FitResult`, `load_model`, `list_backbones`, `__version__`.
Heavy modules (TensorFlow) load on first use, so `import resnet_automl` is quick.
"""
from __future__ import annotations

import importlib

from resnet_automl._version import __version__
from resnet_automl.errors import ConfigError, DataError, ExportError, ResNetAutoMLError, WeightsError

_LAZY = {
    "fit": ("pipeline.fit", "fit"),
    "FitResult": ("pipeline.result", "FitResult"),
    "Budget": ("config.budget", "Budget"),
    "load_model": ("serving.predictor", "load_model"),
    "list_backbones": ("backbones.registry", "list_backbones"),
}

__all__ = ["Budget", "ConfigError", "DataError", "ExportError", "FitResult", "ResNetAutoMLError",
           "WeightsError", "__version__", "fit", "list_backbones", "load_model"]


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
