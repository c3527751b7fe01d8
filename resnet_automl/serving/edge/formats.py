"""The export formats for runtimes other than TF Serving: names, files, runtimes, input contract.

No TensorFlow here: the training side (any Keras backend) and the CLI name formats, check that
their runtimes are installed and find their files with it.

    DIR/exports/litert/model.tflite        float32, input float32 pixels 0..255
    DIR/exports/litert-int8/model.tflite   full-integer, input uint8 pixels 0..255
    DIR/exports/onnx/model.onnx            float32, input float32 pixels 0..255, dynamic batch
Each folder also holds `labels.txt` (one label per output, in order) and `preprocessing.json`
(what `preprocessing_spec` returns): how to turn an image into the model's input.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from resnet_automl.config.schema import EXPORT_FORMATS
from resnet_automl.errors import ConfigError
from resnet_automl.runtime.run_folder import LABELS_FILE, THRESHOLDS_FILE, RunLayout

PREPROCESSING_NAME = "preprocessing.json"
#: The extra that installs the converters and runtimes of the edge formats.
EDGE_EXTRA_FIX = "pip install 'resnet-automl[edge]'"


@dataclass(frozen=True)
class EdgeFormat:
    """One export format besides the SavedModel.

    Attributes:
        name: str, the name in `export_formats` and `--format`.
        file: str, the model file's name inside `DIR/exports/<name>/`.
        input_dtype: str, "float32" or "uint8": what the model's input takes (pixels 0..255 either way).
        exact: bool, True when the file must agree with the Keras model within `verify.TOLERANCE` on
            probabilities; False (quantised) when its test accuracy must stay within `INT8_MAX_DROP`.
        converter: tuple of str, the modules that write it (in the TensorFlow process).
        runtime: str, the module that runs it (in the check's fresh process and in `predict`).
    """

    name: str
    file: str
    input_dtype: str
    exact: bool
    converter: tuple
    runtime: str


EDGE_FORMATS = {
    "litert": EdgeFormat("litert", "model.tflite", "float32", True, ("tensorflow",), "ai_edge_litert"),
    "litert-int8": EdgeFormat("litert-int8", "model.tflite", "uint8", False, ("tensorflow",), "ai_edge_litert"),
    "onnx": EdgeFormat("onnx", "model.onnx", "float32", True, ("tf2onnx", "onnx"), "onnxruntime"),
}
assert set(EDGE_FORMATS) == set(EXPORT_FORMATS) - {"savedmodel"}


def edge_formats(formats) -> list:
    """The `EdgeFormat`s among `formats` (names), in `EXPORT_FORMATS` order; ConfigError on an unknown name."""
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise ConfigError(f"Unknown export format(s) {unknown}. Choose from {', '.join(EXPORT_FORMATS)} "
                          "(comma-separated, e.g. --format litert,onnx).")
    return [EDGE_FORMATS[name] for name in EXPORT_FORMATS if name in formats and name != "savedmodel"]


def missing_modules(formats, *, converters: bool) -> list:
    """The modules `formats` need that are not installed: their runtimes, and their converters when `converters`."""
    needed = []
    for fmt in formats:
        for module in (*(fmt.converter if converters else ()), fmt.runtime):
            if module not in needed and importlib.util.find_spec(module) is None:
                needed.append(module)
    return needed


def require_modules(formats, *, converters: bool) -> None:
    """ConfigError naming the missing modules and the extra that installs them, before any work starts."""
    missing = missing_modules(formats, converters=converters)
    if missing:
        names = ", ".join(fmt.name for fmt in formats)
        raise ConfigError(f"{'Writing' if converters else 'Running'} {names} files needs {', '.join(missing)}, "
                          f"which is not installed. Install the converters and runtimes with `{EDGE_EXTRA_FIX}` "
                          "(or leave the format out) and run the same command again.")


def format_dir(run_dir, name: str) -> Path:
    """`DIR/exports/<name>`, the folder of one format's files."""
    return RunLayout(run_dir).exports_dir / name


def preprocessing_spec(fmt: EdgeFormat, image_size: int, num_classes: int, quantization: tuple | None = None,
                       multilabel: bool = False) -> dict:
    """What `preprocessing.json` says: how an image becomes the model's input, and what comes out.

    `quantization` is (scale, zero_point) of an integer input: pixels are fed as
    round(pixel / scale + zero_point), which is the pixel itself when it is (1.0, 0). A
    `multilabel` (bool) model's probabilities are independent sigmoids, each compared with its
    label's threshold in `THRESHOLDS_FILE`.
    """
    spec = {
        "format": fmt.name, "file": fmt.file,
        "input": {"name": "pixels", "shape": [-1, image_size, image_size, 3], "dtype": fmt.input_dtype,
                  "layout": "NHWC", "channels": "RGB", "value_range": [0, 255]},
        "resize": {"size": [image_size, image_size], "method": "bilinear", "antialias": False,
                   "aspect_ratio": "not kept (the whole image is stretched to the square)",
                   "rounding": "to uint8 after resizing (as in training)"},
        "normalisation": "inside the model: feed raw pixels",
        "outputs": {"probabilities": {"shape": [-1, num_classes], "dtype": "float32",
                                      "meaning": f"softmax over the labels in {LABELS_FILE}, in order"}},
        "labels_file": LABELS_FILE,
    }
    if multilabel:
        spec["outputs"]["probabilities"]["meaning"] = ("one independent probability (sigmoid) per label of "
                                                       f"{LABELS_FILE}, in order")
        spec["thresholds_file"] = THRESHOLDS_FILE
        spec["decision"] = f"label i is predicted when probabilities[i] >= thresholds[label i] ({THRESHOLDS_FILE})"
    if quantization is not None:
        scale, zero_point = quantization
        spec["input"]["quantization"] = {"scale": scale, "zero_point": zero_point,
                                         "feed": "round(pixel / scale + zero_point)"}
    return spec


def replace_folder(staging: Path, target: Path) -> None:
    """Move the finished `staging` folder to `target`, replacing an older one without a moment of neither."""
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def clean_partial_formats(run_dir) -> None:
    """Remove staging and replaced folders that a killed export left under DIR/exports."""
    root = RunLayout(run_dir).exports_dir
    for path in root.glob(".*") if root.exists() else []:
        shutil.rmtree(path, ignore_errors=True)
