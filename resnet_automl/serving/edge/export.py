"""Write a classifier as LiteRT (float32, full-integer int8) and ONNX files for runtimes beside TF Serving.

The converters are the ones TensorFlow and the ONNX ecosystem maintain: TensorFlow's LiteRT
converter (`tf.lite.TFLiteConverter.from_saved_model`) and `tf2onnx`. Both start from the same
pixel-input function of the model (float32 pixels 0..255 at the model's size, normalisation
inside), so every format is fed the way `preprocessing.json` says.

Like the SavedModel, these files are written by TensorFlow from a model on Keras' TensorFlow
backend; a JAX-trained run rebuilds its classifier from the final weights file in a child process
(`python -m resnet_automl.serving.edge.export`). Each format goes to a hidden staging folder and is
renamed into `DIR/exports/<format>/`, so a reader never sees half a file.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from resnet_automl.errors import ExportError
from resnet_automl.runtime.run_folder import LABELS_FILE, THRESHOLDS_FILE, RunLayout
from resnet_automl.serving.edge.formats import (
    PREPROCESSING_NAME,
    edge_formats,
    format_dir,
    preprocessing_spec,
    replace_folder,
)
from resnet_automl.serving.savedmodel.layout import write_thresholds
from resnet_automl.serving.savedmodel.rebuild import classifier_from_weights_file

#: The ONNX opset: supported by onnxruntime >= 1.14 and every tf2onnx op this network needs.
ONNX_OPSET = 17
#: Training images the int8 converter calibrates its activation ranges on (never test images).
CALIBRATION_IMAGES = 300
_SIGNATURE = "serve"


def _pixel_function(model: keras.Model, image_size: int):
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="pixels")

    @tf.function(input_signature=[spec])
    def serve(pixels):
        return {"probabilities": tf.cast(model(pixels, training=False), tf.float32)}

    return serve


def _litert(saved_model: str, calibration: np.ndarray | None, *, int8: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[_SIGNATURE])
    if int8:
        if calibration is None or not len(calibration):
            raise ExportError("The litert-int8 export needs calibration images (a few hundred training images).")

        def representative():
            for image in calibration:
                yield [image[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8  # raw pixels in; probabilities stay float32
    return converter.convert()


def _input_quantization(blob: bytes) -> tuple | None:
    """(scale, zero_point) of a LiteRT file's integer input, or None for a float input."""
    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated

    details = Interpreter(model_content=blob).get_input_details()[0]
    if np.dtype(details["dtype"]).kind not in "iu":
        return None
    scale, zero_point = details["quantization"]
    return float(scale), int(zero_point)


def _onnx(serve, image_size: int, path: Path) -> None:
    import tf2onnx

    spec = (tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="pixels"),)
    tf2onnx.convert.from_function(serve, input_signature=spec, opset=ONNX_OPSET, output_path=str(path))


def write_formats(model: keras.Model, class_names: list, run_dir, formats, *, image_size: int,
                  calibration: np.ndarray | None = None, thresholds: list | None = None) -> dict:
    """Write each of `formats` (names; "savedmodel" is skipped) under `DIR/exports/`; return name -> file path.

    Args:
        model: classifier on the TensorFlow backend taking float32 pixels 0..255, giving probabilities.
        class_names: list of str, the label of each output.
        run_dir: the run directory.
        formats: names from `EXPORT_FORMATS`.
        image_size: int, the model's input side.
        calibration: uint8 pixels [N, S, S, 3] of training images for "litert-int8". Defaults to None.
        thresholds: list of float or None, a multi-label model's per-label thresholds, written beside
            each file as `thresholds.json` (the files output the probabilities). Defaults to None.
    """
    wanted = edge_formats(formats)
    root = RunLayout(run_dir).exports_dir
    root.mkdir(parents=True, exist_ok=True)
    serve = _pixel_function(model, image_size)
    written = {}
    with tempfile.TemporaryDirectory(dir=root, prefix=".savedmodel-") as saved_model:
        if any(fmt.name.startswith("litert") for fmt in wanted):
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(_SIGNATURE, serve)
            archive.write_out(saved_model, verbose=False)
        for fmt in wanted:
            staging = root / f".tmp-{fmt.name}-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                if fmt.name == "onnx":
                    _onnx(serve, image_size, staging / fmt.file)
                    spec = preprocessing_spec(fmt, image_size, len(class_names), multilabel=thresholds is not None)
                else:
                    blob = _litert(saved_model, calibration, int8=not fmt.exact)
                    (staging / fmt.file).write_bytes(blob)
                    spec = preprocessing_spec(fmt, image_size, len(class_names), _input_quantization(blob),
                                              multilabel=thresholds is not None)
                if thresholds is not None:
                    write_thresholds(staging / THRESHOLDS_FILE, class_names, thresholds)
                (staging / LABELS_FILE).write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
                (staging / PREPROCESSING_NAME).write_text(json.dumps(spec, indent=2), encoding="utf-8")
                replace_folder(staging, format_dir(run_dir, fmt.name))
            except ExportError:
                raise
            except Exception as exc:
                raise ExportError(f"Writing the {fmt.name} export under {root} failed: {exc}") from exc
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            written[fmt.name] = str(format_dir(run_dir, fmt.name) / fmt.file)
    return written


def formats_from_weights_file(weights_path, run_dir, formats, calibration_path=None) -> dict:
    """Rebuild the classifier of a weights file (`rebuild.classifier_from_weights_file`) and write
    `formats` (see `write_formats`); `calibration_path` is an .npy of uint8 training pixels."""
    model, meta = classifier_from_weights_file(weights_path)
    calibration = np.load(calibration_path) if calibration_path else None
    return write_formats(model, meta["class_names"], run_dir, formats, image_size=meta["image_size"],
                         calibration=calibration, thresholds=meta.get("thresholds"))


def main(argv=None) -> int:
    """`python -m resnet_automl.serving.edge.export WEIGHTS RUN_DIR --formats litert,onnx [--calibration NPY]`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("weights")
    parser.add_argument("run_dir")
    parser.add_argument("--formats", required=True, help="comma-separated format names")
    parser.add_argument("--calibration", help=".npy of uint8 training pixels [N, S, S, 3] for litert-int8")
    args = parser.parse_args(argv)
    written = formats_from_weights_file(args.weights, args.run_dir, args.formats.split(","), args.calibration)
    print(json.dumps({"written": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
