"""Weight files this package writes: weights only (no optimizer state), atomic, self-describing.

Keras 3's `Model.save_weights` also stores the optimizer's variables (for Adam, twice the model
again), and loading such a file into a freshly compiled model warns that the optimizer's
variables were skipped. Nothing here reads optimizer state (an interrupted trial restarts; the
final training's own backup keeps it), so files are written and read through an uncompiled view
of the model: the same layer objects, hence the same file layout, without the optimizer.

Each file carries a JSON description (backbone, layout, classes, image size) in the HDF5 root
attribute `resnet_automl`, so a file can be used as pretrained weights later and mismatches are
named instead of failing inside Keras.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras

from resnet_automl.runtime.files import atomic_path

METADATA_ATTRIBUTE = "resnet_automl"
FORMAT_VERSION = 1


def classifier_metadata(backbone: str, *, num_classes: int, class_names, image_size: int,
                        trainable_stages: int, **extra) -> dict:
    """The description stored with a classifier's weights (a trial's checkpoint or the final model).

    Args:
        backbone: str, registry name (its canonical name and layout are stored).
        num_classes: int, outputs of the head.
        class_names: list of str or None, the label of each output.
        image_size: int, the side the model was trained at.
        trainable_stages: int, stages that trained.
        **extra: further JSON values (the final model records its `run_dir`).
    """
    from resnet_automl.backbones import get_spec

    spec = get_spec(backbone)
    return {"kind": "classifier", "backbone": spec.name, "layout": spec.layout, "num_classes": int(num_classes),
            "class_names": None if class_names is None else list(class_names), "image_size": int(image_size),
            "trainable_stages": int(trainable_stages), **extra}


def _view(model: keras.Model) -> keras.Model:
    """A functional model over `model`'s layers without its optimizer."""
    return keras.Model(model.inputs, model.outputs, name=model.name)


def save_weights(model: keras.Model, path, metadata: dict | None = None) -> Path:
    """Write `model`'s weights (no optimizer state) to `path` (a `.weights.h5` name), atomically.

    Args:
        model: a functional Keras model.
        path: str or Path ending in `.weights.h5`.
        metadata: dict or None, JSON-serialisable description stored with the weights.
    """
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp:
        _view(model).save_weights(str(tmp))
        if metadata is not None:
            with h5py.File(tmp, "a") as handle:
                handle.attrs[METADATA_ATTRIBUTE] = json.dumps({"format": FORMAT_VERSION, **metadata})
    return path


def load_weights(model: keras.Model, path) -> None:
    """Load a weights file into `model` without touching (or warning about) its optimizer."""
    _view(model).load_weights(str(path))


def read_metadata(path) -> dict | None:
    """The description stored by `save_weights`, or None for a file without one (or not HDF5);
    `RunStateError` naming the file when the description is damaged."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get(METADATA_ATTRIBUTE)
    except OSError:
        return None
    if text is None:
        return None
    try:
        meta = json.loads(text if isinstance(text, str) else text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        meta = exc
    if not isinstance(meta, dict):
        from resnet_automl.errors import RunStateError

        problem = f"not valid JSON ({meta})" if isinstance(meta, Exception) else f"a JSON {type(meta).__name__}"
        raise RunStateError(f"The description stored in the weights file {str(path)!r} is damaged: {problem}. "
                            "Train it again (rerun its fit with --overwrite), or pass another weights file.")
    return meta
