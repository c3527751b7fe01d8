"""Export a classifier as a TF Serving SavedModel: bytes in, labels and probabilities out.

Layout (TF Serving's, `model_base_path = DIR/model`):
    DIR/model/<version>/saved_model.pb, variables/, assets/labels.txt,
    DIR/model/<version>/assets.extra/tf_serving_warmup_requests
    DIR/model/models.config
Each export is written to a hidden temporary folder and renamed into place, so TF Serving never
sees half a model; versions are integers and an existing version is never overwritten.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .errors import ExportError

#: File endings the serving graph's `tf.io.decode_image` reads (WebP is not among them).
SERVABLE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})
SIGNATURE_BYTES = "serving_default"
SIGNATURE_TENSOR = "serving_tensor"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def decode_image_bytes(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode one encoded JPEG/PNG/GIF/BMP to RGB (grey and RGBA included), resize, float32."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size])


def _outputs(probabilities, labels):
    probabilities = tf.cast(probabilities, tf.float32)
    top = tf.argmax(probabilities, axis=1)
    return {"probabilities": probabilities, "classes": tf.gather(labels, top),
            "scores": tf.reduce_max(probabilities, axis=1)}


def next_version(model_root: Path) -> int:
    """1 + the highest integer version folder under `model_root` (1 when there is none)."""
    versions = [int(p.name) for p in model_root.iterdir() if p.is_dir() and p.name.isdigit()] \
        if model_root.exists() else []
    return max(versions, default=0) + 1


def models_config_text(name: str, base_path: Path) -> str:
    """TF Serving `ModelServerConfig` (text protobuf) for one model."""
    return ("model_config_list {\n  config {\n"
            f"    name: \"{name}\"\n    base_path: \"{base_path.resolve()}\"\n"
            "    model_platform: \"tensorflow\"\n  }\n}\n")


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
                         warmup_images: list | None = None) -> Path:
    """Export `model` as the next version under `model_root` and return the version folder.

    Args:
        model: classifier taking float32 pixels 0..255, outputting class probabilities.
        class_names: list of str, label of each output.
        model_root: the TF Serving base path (`DIR/model`).
        image_size: int, side the serving graph resizes decoded images to.
        model_name: str, name used in models.config and warm-up requests. Defaults to "classifier".
        warmup_images: list of encoded image bytes for the warm-up file (a few). Defaults to none.
    """
    model_root = Path(model_root)
    model_root.mkdir(parents=True, exist_ok=True)
    version = next_version(model_root)
    staging = model_root / f".tmp-{version}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    labels = tf.constant([str(name) for name in class_names])

    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        images = tf.map_fn(lambda data: decode_image_bytes(data, image_size), image_bytes,
                           fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))
        return _outputs(model(images, training=False), labels)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="pixels")])
    def serve_tensor(pixels):
        return _outputs(model(tf.image.resize(pixels, [image_size, image_size]), training=False), labels)

    archive.add_endpoint(SIGNATURE_BYTES, serve_bytes)
    archive.add_endpoint(SIGNATURE_TENSOR, serve_tensor)
    try:
        archive.write_out(str(staging), verbose=False)
        (staging / "assets").mkdir(exist_ok=True)
        (staging / "assets" / "labels.txt").write_text("".join(f"{name}\n" for name in class_names),
                                                       encoding="utf-8")
        if warmup_images:
            write_warmup_requests(staging / WARMUP_FILE, warmup_images, model_name)
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
    (model_root / "models.config").write_text(models_config_text(model_name, model_root))
    return target


def clean_partial_exports(model_root: str | os.PathLike) -> int:
    """Remove staging folders left by an export that was killed; return how many were removed."""
    model_root = Path(model_root)
    removed = 0
    for path in model_root.glob(".tmp-*") if model_root.exists() else []:
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def read_labels(version_dir: str | os.PathLike) -> list:
    """Labels of an exported model, from `assets/labels.txt`."""
    return Path(version_dir, "assets", "labels.txt").read_text(encoding="utf-8").splitlines()


def is_version_dir(path: Path) -> bool:
    return path.is_dir() and bool(re.fullmatch(r"\d+", path.name)) and (path / "saved_model.pb").exists()


def as_numpy_bytes(paths: list) -> np.ndarray:
    """An object array of the raw bytes of `paths` (what `saved_model_cli --inputs` accepts)."""
    return np.array([Path(p).read_bytes() for p in paths], dtype=object)
