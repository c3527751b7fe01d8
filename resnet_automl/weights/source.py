"""Where a backbone's starting weights come from: none, ImageNet, a finished run, or a weights file.

A previous run of this package is a pretrained source of its own: pretrain once on a large
in-house dataset, then `fit(..., weights="runs/big")` (or `--weights runs/big`) on each small task.
The run's final classifier is read from `DIR/final/model.weights.h5`; a weights file written by
this package (a classifier's or a backbone's) works the same. Each file carries its description
(`weights_io.read_metadata`: backbone, layout, classes, image size), so a source of another
backbone is refused with both names instead of failing inside Keras. The image size may differ
from the source's: convolution weights do not depend on it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from resnet_automl.config.options import backbone_names, canonical_weights
from resnet_automl.data.scan import file_sha256
from resnet_automl.errors import ConfigError, WeightsError
from resnet_automl.runtime.run_folder import RUN_FILE, RunLayout
from resnet_automl.runtime.run_record import RunRecord


@dataclass(frozen=True)
class WeightsSource:
    """A resolved `weights` argument.

    Attributes:
        kind: "none" (random initialisation), "imagenet", "run" or "file".
        path: str or None, the run folder or file as given.
        weights_file: str or None, the `.weights.h5` file read.
        backbone: str or None, the backbone the source holds (None: any backbone, for "none" and "imagenet").
        layout: str or None, "keras" or "torch" (see `BackboneSpec.layout`).
        content: str or None, "classifier" (backbone + head) or "backbone".
        class_names: list or None, the source's classes (a classifier's).
        image_size: int or None, the source's training image size.
        sha256: str or None, of the weights file.
    """

    kind: str
    path: str | None = None
    weights_file: str | None = None
    backbone: str | None = None
    layout: str | None = None
    content: str | None = None
    class_names: tuple | None = None
    image_size: int | None = None
    sha256: str | None = None

    @property
    def pretrained(self) -> bool:
        """True unless the backbone starts from random weights."""
        return self.kind != "none"

    @property
    def cache_token(self) -> str:
        """Identifies the starting weights in cache keys (changes when the file changes)."""
        return self.sha256 or self.kind

    def describe(self) -> dict | None:
        """The record kept in run.json and the report (None for random initialisation)."""
        if self.kind == "none":
            return None
        row = asdict(self)
        row["class_names"] = None if self.class_names is None else list(self.class_names)
        return row


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def _from_run(folder: Path) -> WeightsSource:
    layout = RunLayout(folder)
    if not layout.run_file.exists():
        raise WeightsError(f"--weights {str(folder)!r} is a folder but not a run of resnet-automl (no {RUN_FILE}). "
                           "Pass the --out folder of a finished `resnet-automl fit`, a .weights.h5 file, "
                           "'imagenet' or 'none'.")
    record = RunRecord.read(layout.run_file)
    weights_file = layout.final_weights
    if not record.stage_done("final") or not weights_file.exists():
        raise WeightsError(f"--weights {str(folder)!r} is a run whose fit has not finished (stages done: "
                           f"{record.stages_done}), so it has no final model to start from. Rerun its "
                           "`resnet-automl fit` command to finish it, or pass another run.")
    from resnet_automl.weights.io import read_metadata

    meta = read_metadata(weights_file) or {}
    backbone = meta.get("backbone") or (record.best_hyperparameters or {}).get("backbone")
    class_names = meta.get("class_names")
    if class_names is None and layout.split_file.exists():
        from resnet_automl.data.split import DatasetSplits

        class_names = DatasetSplits.load(layout.split_file).class_names
    from resnet_automl.backbones import get_spec

    spec = get_spec(backbone)
    return WeightsSource("run", str(folder), str(weights_file), spec.name, meta.get("layout", spec.layout),
                         "classifier", tuple(class_names) if class_names else None,
                         meta.get("image_size", record.image_size), file_sha256(weights_file))


def _from_file(path: Path) -> WeightsSource:
    if not path.name.endswith(".weights.h5") or not _is_hdf5(path):
        raise WeightsError(f"--weights {str(path)!r} is not a Keras weights file (.weights.h5). Pass a run folder "
                           "of resnet-automl, a .weights.h5 file written by it (or from a backbone of its registry), "
                           "'imagenet' or 'none'.")
    from resnet_automl.weights.io import read_metadata

    meta = read_metadata(path)
    if meta is None:  # e.g. a backbone saved with Keras' own save_weights: identified when it is loaded
        return WeightsSource("file", str(path), str(path), None, None, "backbone", None, None, file_sha256(path))
    from resnet_automl.backbones import get_spec

    spec = get_spec(meta["backbone"])
    names = meta.get("class_names")
    return WeightsSource("file", str(path), str(path), spec.name, meta.get("layout", spec.layout),
                         meta.get("kind", "classifier"), tuple(names) if names else None, meta.get("image_size"),
                         file_sha256(path))


def resolve_weights(weights) -> WeightsSource:
    """Turn the `weights` argument (None, "none", "imagenet", a run folder or a file) into a source.

    Raises `WeightsError` naming the path and the fix for a missing path, a folder that is not a
    finished run, or a file that is not a Keras weights file.
    """
    weights = canonical_weights(weights)
    if weights is None:
        return WeightsSource("none")
    if weights == "imagenet":
        return WeightsSource("imagenet")
    if not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(f"The 'weights' parameter of fit must be None, 'imagenet', a run folder or a .weights.h5 "
                          f"file. Got {weights!r} instead.")
    path = Path(weights).expanduser()
    if path.is_dir():
        return _from_run(path)
    if path.is_file():
        return _from_file(path)
    raise WeightsError(f"--weights {str(weights)!r} does not exist. Pass 'imagenet', 'none', a run folder of "
                       "resnet-automl (its --out) or a .weights.h5 file.")


def backbone_for(source: WeightsSource, requested) -> str | None:
    """The backbone a fit must use with `source`: the source's own, or None when any will do.

    Raises `ConfigError` naming both backbones when `requested` (a name, a list or "auto") does
    not include the source's.
    """
    if source.backbone is None:
        return None
    if requested is None or requested == "auto":
        return source.backbone
    from resnet_automl.backbones import get_spec

    names = [get_spec(name).name for name in backbone_names(requested)]
    if source.backbone not in names:
        raise ConfigError(f"--weights {source.path!r} holds a {source.backbone} backbone, but --backbone "
                          f"{','.join(names)} was requested. Pass --backbone {source.backbone} (or auto), or "
                          "weights of the backbone you want.")
    return source.backbone


def identify_backbone_file(path) -> str | None:
    """The registry backbone whose headless weights `path` holds, found by trying each (or None)."""
    from resnet_automl.backbones import REGISTRY, build_backbone

    for name, spec in sorted(REGISTRY.items(), key=lambda item: item[1].params):
        try:
            build_backbone(spec, (32, 32, 3)).load_weights(str(path))
            return name
        except Exception:
            continue
    return None


def is_pretrained(weights) -> bool:
    """True when `weights` (an argument or a `WeightsSource`) gives the backbone trained weights."""
    if isinstance(weights, WeightsSource):
        return weights.pretrained
    return canonical_weights(weights) is not None


def cache_token(weights) -> str:
    """A short identity of `weights` for cache keys."""
    return weights.cache_token if isinstance(weights, WeightsSource) else str(weights)
