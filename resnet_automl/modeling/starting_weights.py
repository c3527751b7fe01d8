"""Starting weights of a backbone: random, ImageNet, a finished run's classifier or a weights file.

A run's classifier file holds the backbone inside a classifier: it is rebuilt here around a fresh
backbone of the same spec to read the backbone's arrays out (once per process and file).
"""
from __future__ import annotations

import keras

from resnet_automl.backbones import build_backbone, get_spec
from resnet_automl.errors import WeightsError
from resnet_automl.modeling.assembly import attach_head, backbone_of
from resnet_automl.weights.io import load_weights, read_metadata
from resnet_automl.weights.loading import load_backbone_weights
from resnet_automl.weights.source import WeightsSource, identify_backbone_file, resolve_weights


def load_pretrained(net: keras.Model, spec, weights) -> str:
    """Load `weights` (None, "imagenet", a run folder, a `.weights.h5` path or a resolved
    `WeightsSource`) into the backbone `net` built from `spec`; return what was loaded."""
    source = weights if isinstance(weights, WeightsSource) else resolve_weights(weights)
    if source.kind in ("run", "file"):
        return load_into_backbone(net, spec, source)
    return load_backbone_weights(net, spec, None if source.kind == "none" else "imagenet")


_CLASSIFIER_BACKBONES = {}


def _source_backbone_weights(source: WeightsSource) -> dict:
    """{layer name: [arrays]} of the backbone inside a classifier weights file (read once per process)."""
    key = (source.weights_file, source.sha256)
    if key not in _CLASSIFIER_BACKBONES:
        spec = get_spec(source.backbone)
        size = source.image_size or 64
        classifier = attach_head(build_backbone(spec, (size, size, 3)), spec,
                                 len(source.class_names or ()) or _head_classes(source), image_size=size)
        load_weights(classifier, source.weights_file)
        _CLASSIFIER_BACKBONES[key] = {layer.name: layer.get_weights() for layer in backbone_of(classifier).layers
                                      if layer.weights}
    return _CLASSIFIER_BACKBONES[key]


def _head_classes(source: WeightsSource) -> int:
    meta = read_metadata(source.weights_file) or {}
    if "num_classes" not in meta:
        raise WeightsError(f"{source.weights_file!r} does not say how many classes its head has; pass a run folder.")
    return int(meta["num_classes"])


def load_into_backbone(backbone, spec, source: WeightsSource) -> str:
    """Load a run's or a file's weights into `backbone` (built from `spec`); return a description."""
    if source.backbone is not None and source.backbone != spec.name:
        raise WeightsError(f"--weights {source.path!r} holds a {source.backbone} backbone and cannot start a "
                           f"{spec.name}. Pass --backbone {source.backbone}, or weights of {spec.name}.")
    if source.content == "classifier":
        arrays = _source_backbone_weights(source)
        for layer in backbone.layers:
            if layer.weights:
                layer.set_weights(arrays[layer.name])
        return f"{source.kind} {source.path} (sha256 {source.sha256[:12]})"
    try:
        backbone.load_weights(source.weights_file)
    except Exception as exc:
        fits = identify_backbone_file(source.weights_file)
        hint = f"It holds a {fits} backbone: pass --backbone {fits}." if fits else \
            "It matches no backbone of the registry (`resnet-automl backbones`)."
        raise WeightsError(f"The weights file {source.weights_file!r} does not fit {spec.name}. {hint}") from exc
    return f"file {source.path}"
