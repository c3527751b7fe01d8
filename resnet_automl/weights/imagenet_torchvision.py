"""torchvision's ImageNet files: pinned URLs, download with a sha256-prefix check, conversion
into the Keras cache, and the `weights="imagenet"` route for the "torch" layout.

Files are fetched into the Keras cache (`$KERAS_HOME/models` or `~/.keras/models`) with a socket
timeout, checked as torch.hub checks them (the hex part of the file name is the start of its
sha256), converted once by `convert.convert_state_dict` and saved as
`resnet_automl_<name>_imagenet.weights.h5`.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import urllib.request
from pathlib import Path

import keras

from resnet_automl.backbones.registry import BackboneSpec, get_spec
from resnet_automl.errors import WeightsError
from resnet_automl.runtime.files import atomic_path
from resnet_automl.weights.cache import DOWNLOAD_TIMEOUT_S, keras_cache_dir
from resnet_automl.weights.convert import check_torch_layout, convert_state_dict, read_state_dict

#: torchvision's IMAGENET1K_V1 files (torchvision.models.resnet `model_urls`). The hex part of
#: each file name is the start of the file's sha256, checked after download as torch.hub does.
TORCHVISION_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "resnet152": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
    "resnext50_32x4d": "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
    "resnext101_32x8d": "https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth",
}
#: torch.hub's pattern for the sha256 prefix in a file name ("resnet18-f37072fd.pth").
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")


def converted_weights_path(name: str) -> Path:
    """Where the converted ImageNet weights of backbone `name` live in the Keras cache."""
    return keras_cache_dir() / f"resnet_automl_{name}_imagenet.weights.h5"


def _torchvision_url(name: str) -> str:
    spec = get_spec(name)
    if spec.name not in TORCHVISION_URLS:
        raise WeightsError(f"There are no torchvision ImageNet weights for {spec.name}; choose one of "
                           f"{sorted(TORCHVISION_URLS)} or pass weights=None (--weights none).")
    return TORCHVISION_URLS[spec.name]


def check_hash_prefix(path, name: str | None = None) -> None:
    """Check that the sha256 of `path` starts with the hex part of its name, as torch.hub does.

    Args:
        path: str or Path of the file to hash.
        name: str, the file name carrying the prefix, like "resnet18-f37072fd.pth". Defaults
            to None: the name of `path`. Names without a hex part are not checked.

    Raises:
        WeightsError: the digest does not start with that prefix (corrupt or wrong file).
    """
    path = Path(path)
    name = name or path.name
    match = HASH_REGEX.search(name)
    if not match or not match[1]:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(match[1]):
        raise WeightsError(f"The file {str(path)!r} is corrupt or not the published {name}: its sha256 "
                           f"{digest.hexdigest()[:16]}... does not start with {match[1]!r} as the name says.")


def _download(url: str, dest: Path) -> None:
    """Stream `url` into `dest` (each read times out after DOWNLOAD_TIMEOUT_S seconds)."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def fetch_torchvision(name: str) -> Path:
    """The torchvision ImageNet file of backbone `name` in the Keras cache, downloaded if needed.

    Args:
        name: registry name with a torchvision file (see `TORCHVISION_URLS`).

    Returns:
        Path of the verified `.pth` file in `keras_cache_dir()`.

    Raises:
        WeightsError: the download failed or the sha256 prefix does not match; the message names
            the file, the URL, the cache folder and `weights=None`. Nothing partial is left behind.
    """
    url = _torchvision_url(name)
    cache = keras_cache_dir()
    dest = cache / url.rsplit("/", 1)[-1]
    if dest.is_file():
        try:
            check_hash_prefix(dest)
            return dest
        except WeightsError:
            dest.unlink()  # a corrupt cached copy: fetch it again
    try:
        with atomic_path(dest, ".part") as partial:
            _download(url, partial)
            check_hash_prefix(partial, dest.name)
        return dest
    except Exception as exc:
        raise WeightsError(
            f"Could not get the torchvision ImageNet weights of {name} ({dest.name}) from {url}: {exc}. "
            f"Download that file on a connected machine and place it in {cache} (the Keras cache), or "
            f"convert a copy with `resnet-automl weights import {name} FILE`, or pass weights=None "
            "(--weights none) to train from random initialisation.") from exc


def import_weights(name: str, file) -> Path:
    """Convert a torchvision/timm state dict of backbone `name` into the Keras cache.

    Args:
        name: registry name, e.g. "resnet18" or "resnext50_32x4d".
        file: str or Path, its `.pth`/`.pt` (needs torch) or `.safetensors` state dict.

    Returns:
        Path of `<keras cache>/resnet_automl_<name>_imagenet.weights.h5`, written atomically;
        `weights="imagenet"` loads it for any input size.

    Raises:
        WeightsError: unreadable file, wrong architecture, or the cache cannot be written.
    """
    from resnet_automl.backbones.resnet import build_backbone

    spec = get_spec(name)
    _torchvision_url(spec.name)  # rejects backbones without torchvision weights (tiny_resnet)
    model = build_backbone(spec, (224, 224, 3), layout="torch")
    convert_state_dict(read_state_dict(file), model, include_top=False)
    dest = converted_weights_path(spec.name)
    try:
        with atomic_path(dest) as temporary:
            model.save_weights(str(temporary), overwrite=True)
    except OSError as exc:
        raise WeightsError(f"Could not write the converted weights {str(dest)!r}: {exc}. Make the Keras cache "
                           f"{dest.parent} writable or point KERAS_HOME at a writable folder.") from exc
    return dest


def ensure_converted_weights(name: str) -> Path:
    """The converted ImageNet weights file of backbone `name`, downloading and converting it if missing.

    Raises:
        WeightsError: no converted file and the download failed; the message names the URL, the
            cache folder, `resnet-automl weights import NAME FILE` and `weights=None`.
    """
    name = get_spec(name).name
    url = _torchvision_url(name)
    path = converted_weights_path(name)
    if not path.is_file():
        try:
            downloaded = fetch_torchvision(name)
        except WeightsError as exc:
            cause = exc.__cause__ or exc
            raise WeightsError(
                f"No ImageNet weights for {name} in {path.parent} (the Keras cache), and getting them "
                f"from {url} failed: {cause}. Without internet, download that file on another machine and "
                f"run `resnet-automl weights import {name} FILE` (FILE: that .pth, or a .safetensors "
                "copy), or pass weights=None (--weights none) to train from random initialisation.") from exc
        import_weights(name, downloaded)
    return path


def load_converted_imagenet(backbone: keras.Model, spec: BackboneSpec) -> str:
    """Load the converted torchvision ImageNet weights into `backbone`, importing them first if needed.

    Args:
        backbone: headless model from `build_backbone(spec, ..., layout="torch")`, any input size.
        spec: its `BackboneSpec`.

    Returns:
        A short description ("ImageNet (torchvision, <path>)").

    Raises:
        WeightsError: wrong layout, or no converted file and the download failed; the message
            names the URL, the cache folder, `resnet-automl weights import NAME FILE` and `weights=None`.
    """
    check_torch_layout(backbone)
    path = ensure_converted_weights(spec.name)
    try:
        backbone.load_weights(str(path))
    except Exception as exc:
        raise WeightsError(f"The converted weights {str(path)!r} do not fit {spec.name}: {exc}. Delete the file "
                           f"and rerun `resnet-automl weights import {spec.name} FILE`.") from exc
    return f"ImageNet (torchvision, {path})"
