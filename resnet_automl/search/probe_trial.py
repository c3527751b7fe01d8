"""The linear-probe trial: with pretrained weights, a head fitted by scikit-learn on the backbone's
pooled features (once per backbone), scored on val without training, checkpointed as its head alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_automl.modeling.head import head_from_probe, pooled_features, probe_sample, set_head
from resnet_automl.runtime.files import atomic_path
from resnet_automl.search.phases import TrialPhases
from resnet_automl.training.callbacks import KeepBestEpoch

#: A probe trial's checkpoint: its head (kernel, bias) only; the rest is the starting weights.
PROBE_HEAD_FILE = "probe_head.npz"


class ProbeHeads:
    """The linear probe of each backbone, fitted on the first trial that needs it: every trial
    starts from the same pretrained weights, so one probe per backbone serves them all.

    Args:
        seed: int, seed of the probe's image sample (`head.probe_sample`).
        num_classes: int, classes of the head.
        class_weight: dict, list or None, class weights (or multi-label positive weights) of the
            logistic regression; None: unweighted.
    """

    def __init__(self, seed: int, num_classes: int, class_weight=None):
        self.seed, self.num_classes, self.class_weight = seed, num_classes, class_weight
        self._heads: dict = {}  # backbone name -> (kernel, bias)

    def initialise(self, backbone: str, model, train_data, phases: TrialPhases) -> None:
        """Set `model`'s head to `backbone`'s probe, fitting it first on `train_data` (`ArrayBatches`)
        when this is its first trial (timed as the "features" and "probe" phases)."""
        if backbone not in self._heads:
            images, labels = probe_sample(train_data.array, train_data.labels, self.seed)
            with phases.time("features"):
                features = pooled_features(model, images)
            with phases.time("probe"):
                self._heads[backbone] = head_from_probe(features, labels, self.num_classes, self.class_weight)
        set_head(model, *self._heads[backbone])


def predict_probe(model, val_data, phases: TrialPhases):
    """`model`'s probabilities on `val_data` as its probe head stands (timed as "validate")."""
    with phases.time("validate"):
        return model.predict(val_data, verbose=0)


def save_probe_head(model, callbacks, phases: TrialPhases) -> None:
    """Write `model`'s head to `PROBE_HEAD_FILE` beside the trial's `KeepBestEpoch` checkpoint, if
    `callbacks` hold one (timed as "checkpoint")."""
    for callback in callbacks:
        if isinstance(callback, KeepBestEpoch):
            with phases.time("checkpoint"), atomic_path(probe_head_path(callback.filepath)) as path:
                kernel, bias = model.get_layer("predictions").get_weights()
                with open(path, "wb") as handle:
                    np.savez(handle, kernel=kernel, bias=bias)


def restore_probe(model, checkpoint_path) -> bool:
    """Set `model`'s head from a probe trial's head file next to `checkpoint_path`; False when the
    trial was not a probe (no such file)."""
    path = probe_head_path(checkpoint_path)
    if not path.exists():
        return False
    with np.load(path) as head:
        set_head(model, head["kernel"], head["bias"])
    return True


def probe_head_path(checkpoint_path) -> Path:
    """The head file of a probe trial whose `KeepBestEpoch` checkpoint would be `checkpoint_path`."""
    return Path(checkpoint_path).with_name(PROBE_HEAD_FILE)
