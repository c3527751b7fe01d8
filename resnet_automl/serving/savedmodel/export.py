"""Export a classifier as a TF Serving SavedModel: bytes in, labels and probabilities out.

A single-label model returns `probabilities` [N, C], `classes` (the top label) and `scores` (its
probability); a multi-label model returns `probabilities` [N, C] and `predicted` (bool [N, C]: the
probability at or above the label's threshold, from `assets/thresholds.json`).

Layout (TF Serving's, `model_base_path = DIR/model`):
    DIR/model/<version>/saved_model.pb, variables/, assets/labels.txt,
    DIR/model/<version>/assets.extra/tf_serving_warmup_requests
    DIR/model/models.config
Each export is written to a hidden temporary folder and renamed into place, so TF Serving never
sees half a model; versions are integers and an existing version is never overwritten.

The SavedModel is always written by TensorFlow from a model on Keras' TensorFlow backend: a model
trained on another backend (JAX) is rebuilt from its weights file in a TensorFlow-backend process
(`tensorflow_process.export_in_tensorflow_process`). The graph is then plain TensorFlow, which any TF Serving runs on
any device, instead of jax2tf's XlaCallModule, whose serialized code is lowered for the platforms
chosen at export time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import keras
import tensorflow as tf

from resnet_automl.data.images import SERVABLE_EXTENSIONS
from resnet_automl.data.scan import file_sha256
from resnet_automl.errors import ExportError
from resnet_automl.serving.savedmodel.layout import (
    LABELS_FILE,
    SIGNATURE_BYTES,
    SIGNATURE_TENSOR,
    THRESHOLDS_FILE,
    WARMUP_FILE,
    as_numpy_bytes,
    clean_partial_exports,
    models_config_text,
    next_version,
    read_labels,
    write_provenance,
    write_thresholds,
)
from resnet_automl.serving.savedmodel.rebuild import classifier_from_weights_file

__all__ = ["SERVABLE_EXTENSIONS", "WARMUP_FILE", "as_numpy_bytes", "clean_partial_exports", "export_serving_model",
           "export_from_weights_file", "read_labels"]


def decode_image_bytes(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode one encoded JPEG/PNG/GIF/BMP to RGB (grey and RGBA included), resize, float32."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size])


def _outputs(probabilities, labels, thresholds=None):
    probabilities = tf.cast(probabilities, tf.float32)
    if thresholds is not None:
        return {"probabilities": probabilities, "predicted": tf.greater_equal(probabilities, thresholds)}
    top = tf.argmax(probabilities, axis=1)
    return {"probabilities": probabilities, "classes": tf.gather(labels, top),
            "scores": tf.reduce_max(probabilities, axis=1)}


def write_warmup_requests(path: Path, samples: list, model_name: str) -> int:
    """Write TF Serving warm-up `PredictionLog` records (TFRecord file) for `serving_default`."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for data in samples:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE_BYTES))
            request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([data], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return len(samples)


def export_serving_model(model: keras.Model, class_names: list, model_root: str | os.PathLike, *,
                         image_size: int, model_name: str = "classifier",
                         warmup_images: list | None = None, thresholds: list | None = None,
                         weights_sha256: str | None = None) -> Path:
    """Export `model` as the next version under `model_root` and return the version folder.

    Args:
        model: classifier taking float32 pixels 0..255, outputting class probabilities.
        class_names: list of str, label of each output.
        model_root: the TF Serving base path (`DIR/model`).
        image_size: int, side the serving graph resizes decoded images to.
        model_name: str, name used in models.config and warm-up requests. Defaults to "classifier".
        warmup_images: list of encoded image bytes for the warm-up file (a few). Defaults to none.
        thresholds: list of float (one per label) for a multi-label model: its outputs are then
            `probabilities` and `predicted`. Defaults to None (single-label).
        weights_sha256: str or None, the sha256 of the weights file the model was loaded from,
            written into the version (`layout.PROVENANCE_FILE`) before it is renamed into place.
            Defaults to None (nothing written).
    """
    model_root = Path(model_root)
    model_root.mkdir(parents=True, exist_ok=True)
    version = next_version(model_root)
    staging = model_root / f".tmp-{version}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    labels = tf.constant([str(name) for name in class_names])
    cuts = None if thresholds is None else tf.constant([float(t) for t in thresholds], tf.float32)

    # No `archive.track(model)`: the endpoints capture the model's tf.Variables by themselves, and
    # tracking the keras.Variable wrappers as well stores every weight twice.
    archive = keras.export.ExportArchive()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        images = tf.map_fn(lambda data: decode_image_bytes(data, image_size), image_bytes,
                           fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))
        return _outputs(model(images, training=False), labels, cuts)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="pixels")])
    def serve_tensor(pixels):
        return _outputs(model(tf.image.resize(pixels, [image_size, image_size]), training=False), labels, cuts)

    archive.add_endpoint(SIGNATURE_BYTES, serve_bytes)
    archive.add_endpoint(SIGNATURE_TENSOR, serve_tensor)
    try:
        archive.write_out(str(staging), verbose=False)
        (staging / LABELS_FILE).parent.mkdir(exist_ok=True)
        (staging / LABELS_FILE).write_text("".join(f"{name}\n" for name in class_names),
                                                       encoding="utf-8")
        if thresholds is not None:
            write_thresholds(staging / THRESHOLDS_FILE, class_names, thresholds)
        if warmup_images:
            write_warmup_requests(staging / WARMUP_FILE, warmup_images, model_name)
        if weights_sha256:
            write_provenance(staging, weights_sha256)
        target = model_root / str(version)
        if target.exists():  # another process took this version meanwhile: never overwrite it
            raise ExportError(f"Model version folder {target} appeared during export; export again.")
        os.rename(staging, target)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"Writing the SavedModel under {model_root} failed: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    (model_root / "models.config").write_text(models_config_text(model_name))
    return target




def export_from_weights_file(weights_path, model_root, *, model_name: str = "classifier",
                             warmup_images: list | None = None) -> Path:
    """Rebuild the classifier of a weights file (`classifier_from_weights_file`) and export it; return
    the version folder."""
    model, meta = classifier_from_weights_file(weights_path)
    return export_serving_model(model, meta["class_names"], model_root, image_size=meta["image_size"],
                                model_name=model_name, warmup_images=warmup_images, thresholds=meta.get("thresholds"),
                                weights_sha256=file_sha256(weights_path))


def main(argv=None) -> int:
    """`python -m resnet_automl.serving.savedmodel.export WEIGHTS MODEL_ROOT [--formats litert,onnx --run-dir DIR]`: the
    child process of `tensorflow_process.export_in_tensorflow_process`; with `--formats`, the same
    rebuilt model also writes those files under `DIR/exports/` (`edge.export.write_formats`)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("weights")
    parser.add_argument("model_root")
    parser.add_argument("--model-name", default="classifier")
    parser.add_argument("--warmup", action="append", default=[], help="an image file for the warm-up requests")
    parser.add_argument("--formats", default="", help="comma-separated LiteRT/ONNX formats to write as well")
    parser.add_argument("--run-dir", help="the run directory the formats go under (DIR/exports/<format>/)")
    parser.add_argument("--calibration", help=".npy of uint8 training pixels [N, S, S, 3] for litert-int8")
    args = parser.parse_args(argv)
    model, meta = classifier_from_weights_file(args.weights)
    version_dir = export_serving_model(model, meta["class_names"], args.model_root, image_size=meta["image_size"],
                                       model_name=args.model_name,
                                       warmup_images=[Path(p).read_bytes() for p in args.warmup],
                                       thresholds=meta.get("thresholds"), weights_sha256=file_sha256(args.weights))
    written = {}
    if args.formats:
        import numpy as np

        from resnet_automl.serving.edge.export import write_formats

        written = write_formats(model, meta["class_names"], args.run_dir, args.formats.split(","),
                                image_size=meta["image_size"], thresholds=meta.get("thresholds"),
                                calibration=np.load(args.calibration) if args.calibration else None)
    print(json.dumps({"version_dir": str(version_dir), "written": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
