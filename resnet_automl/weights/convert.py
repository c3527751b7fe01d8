"""ImageNet weights from torchvision/timm state dicts, converted into our "torch" layout.

Our `layout="torch"` backbones reproduce torchvision's ResNet v1.5 layer for layer, so a
torchvision (or timm: same `conv1`/`bn1`/`layerN`/`fc` names) state dict maps onto them one
tensor per weight:

    conv1, bn1                          -> conv1_conv, conv1_bn
    layer{s}.{i}.conv{k}, .bn{k}        -> conv{s+1}_block{i+1}_{k}_conv, _{k}_bn
    layer{s}.{i}.downsample.0, .1       -> conv{s+1}_block{i+1}_0_conv, _0_bn
    fc                                  -> predictions (only with include_top)

Convolution kernels go from PyTorch's (out, in/groups, kh, kw) to Keras' (kh, kw, in/groups, out)
by one transpose (ResNeXt's `GroupedConv2D` keeps one kernel of that shape too); BatchNorm's
weight/bias/running_mean/running_var become gamma/beta/moving_mean/moving_variance; `fc.weight`
is transposed. Downloading and caching live in `torchvision_weights`.

Reading needs `safetensors` for `.safetensors` files and `torch` only for `.pth`/`.pt` files,
which are always opened with `weights_only=True` (no arbitrary unpickling).
"""
from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from resnet_automl.errors import WeightsError

#: Wrappers some training scripts put around every key; stripped when all keys share one.
KEY_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.")
#: Keys of checkpoints that hold the state dict one level down.
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")
IGNORED_SUFFIXES = ("num_batches_tracked",)
STATE_SUFFIXES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                  "moving_variance": "running_var"}


# --------------------------------------------------------------------------------------------
# Reading state dicts
# --------------------------------------------------------------------------------------------

def read_state_dict(path) -> dict:
    """Read a torchvision/timm state dict into numpy arrays, without running pickled code.

    Args:
        path: str or Path, a `.safetensors` file (read with `safetensors.numpy`, no torch
            needed) or a `.pth`/`.pt`/`.bin` file (needs torch; loaded with `weights_only=True`).

    Returns:
        dict mapping parameter names (wrapper prefixes such as "module." removed) to float32
        numpy arrays.

    Raises:
        WeightsError: the file is missing, has another suffix, needs a package that is not
            installed, or holds objects other than tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"The weights file {str(path)!r} does not exist. Pass the path of a "
                           "torchvision/timm .pth or .safetensors state dict.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state = _read_safetensors(path)
    elif suffix in (".pth", ".pt", ".bin"):
        state = _read_torch(path)
    else:
        raise WeightsError(f"Cannot read {str(path)!r}: expected a .safetensors, .pth or .pt state dict "
                           f"(torchvision/timm), got the suffix {suffix or '(none)'!r}.")
    if not state:
        raise WeightsError(f"The weights file {str(path)!r} holds no tensors.")
    return strip_prefixes(state)


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise WeightsError(f"Reading {str(path)!r} needs the safetensors package: "
                           "pip install safetensors") from exc
    try:
        return {key: np.asarray(value, dtype=np.float32) for key, value in load_file(str(path)).items()}
    except Exception as exc:
        raise WeightsError(f"Could not read the safetensors file {str(path)!r}: {exc}") from exc


def _read_torch(path: Path) -> dict:
    try:
        import torch
    except ImportError as exc:
        raise WeightsError(
            f"Reading the PyTorch file {str(path)!r} needs torch (pip install torch), or convert it "
            "to .safetensors on a machine that has torch (safetensors.torch.save_file(torch.load(path, "
            "weights_only=True), 'file.safetensors')) and pass that file instead.") from exc
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for non-tensor objects, RuntimeError for bad files
        raise WeightsError(
            f"Refused or could not read {str(path)!r} as a plain state dict (loaded with "
            f"weights_only=True, so pickled objects other than tensors are not run): {exc}. Save the "
            "state dict alone (torch.save(model.state_dict(), path)) or as .safetensors.") from exc
    state = _unwrap_checkpoint(loaded, path)
    return {key: value.detach().float().cpu().numpy() for key, value in state.items()
            if isinstance(value, torch.Tensor)}


def _unwrap_checkpoint(loaded, path: Path) -> dict:
    """The state dict inside `loaded` (itself, or under "state_dict"/"model"/... of a checkpoint)."""
    if not isinstance(loaded, dict):
        raise WeightsError(f"{str(path)!r} holds a {type(loaded).__name__}, not a state dict "
                           "(a mapping of parameter names to tensors).")
    for key in CHECKPOINT_KEYS:
        if isinstance(loaded.get(key), dict) and "conv1.weight" not in loaded:
            return _unwrap_checkpoint(loaded[key], path)
    return loaded


def strip_prefixes(state: dict) -> dict:
    """Remove wrapper prefixes ("module.", "model.", ...) shared by every key of `state`."""
    changed = True
    while changed and state:
        changed = False
        for prefix in KEY_PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix):]: value for key, value in state.items()}
                changed = True
    return state


# --------------------------------------------------------------------------------------------
# Mapping onto our layers
# --------------------------------------------------------------------------------------------

_BLOCK_LAYER = re.compile(r"^conv([2-5])_block(\d+)_(\d)_(conv|bn)$")


def torch_prefix(layer_name: str) -> str | None:
    """The torchvision module name of one of our layers ("conv2_block1_0_bn" -> "layer1.0.downsample.1").

    Returns None for layers that have no torchvision counterpart.
    """
    if layer_name == "conv1_conv":
        return "conv1"
    if layer_name == "conv1_bn":
        return "bn1"
    if layer_name == "predictions":
        return "fc"
    match = _BLOCK_LAYER.match(layer_name)
    if not match:
        return None
    stage, block, index, kind = int(match[1]), int(match[2]), int(match[3]), match[4]
    base = f"layer{stage - 1}.{block - 1}."
    if index == 0:
        return base + ("downsample.0" if kind == "conv" else "downsample.1")
    return base + f"{kind}{index}"


def _layer_kind(layer) -> str:
    if isinstance(layer, keras.layers.BatchNormalization):
        return "bn"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    return "conv"  # Conv2D and GroupedConv2D: one kernel (Conv2D may have a bias)


def _tensors_for(layer, prefix: str, state: dict) -> tuple:
    """The converted arrays for `layer` (in its weight order) and the state keys they came from."""
    kind = _layer_kind(layer)
    keys = []
    arrays = []
    for weight in layer.weights:
        short = weight.path.rsplit("/", 1)[-1]
        if kind == "bn":
            key = f"{prefix}.{STATE_SUFFIXES[short]}"
        else:
            key = f"{prefix}.{'weight' if short == 'kernel' else short}"
        if key not in state:
            raise WeightsError(f"The state dict has no {key!r} for layer {layer.name!r} ({short}). Is it "
                               "a torchvision/timm state dict of the same architecture?")
        value = np.asarray(state[key], dtype=np.float32)
        if short == "kernel" and kind == "conv":
            value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
        elif short == "kernel" and kind == "dense":
            value = value.T
        if tuple(value.shape) != tuple(weight.shape):
            raise WeightsError(f"Shape mismatch for layer {layer.name!r} ({short}): the state dict's {key!r} "
                               f"converts to {tuple(value.shape)} but the layer needs {tuple(weight.shape)}. "
                               "Check that the file is for the same backbone.")
        keys.append(key)
        arrays.append(value)
    return arrays, keys


def map_state_dict(state: dict, model: keras.Model, include_top: bool = False) -> dict:
    """Convert `state` to `{layer name: [arrays in the layer's weight order]}` for `model`.

    Args:
        state: dict of torchvision/timm parameter names to arrays (from `read_state_dict`).
        model: a backbone built with `layout="torch"`.
        include_top: bool, also map `fc` onto the "predictions" layer (which must exist).
            Defaults to False: `fc.*` tensors are then ignored.

    Returns:
        dict, one entry per weighted layer of `model`.

    Raises:
        WeightsError: the model is not in "torch" layout, a layer has no counterpart or its
            tensor has the wrong shape, or tensors of the state dict are left unused.
    """
    check_torch_layout(model)
    state = strip_prefixes(dict(state))
    mapped, used = {}, set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name == "predictions" and not include_top:
            raise WeightsError(f"{model.name} has a 'predictions' layer: pass include_top=True to fill it "
                               "from the state dict's fc, or build the backbone headless.")
        prefix = torch_prefix(layer.name)
        if prefix is None:
            raise WeightsError(f"Layer {layer.name!r} of {model.name} has no torchvision counterpart; only "
                               "backbones from build_backbone(..., layout='torch') can be converted.")
        mapped[layer.name], keys = _tensors_for(layer, prefix, state)
        used.update(keys)
    unused = sorted(key for key in state if key not in used and not _ignorable(key, include_top))
    if unused:
        shown = ", ".join(unused[:8]) + (f", ... ({len(unused)} in all)" if len(unused) > 8 else "")
        raise WeightsError(f"The state dict has tensors that {model.name} has no place for: {shown}. "
                           "It is probably for another architecture (or has extra heads).")
    return mapped


def _ignorable(key: str, include_top: bool) -> bool:
    return key.endswith(IGNORED_SUFFIXES) or (not include_top and key.startswith("fc."))


def check_torch_layout(model: keras.Model) -> None:
    try:
        stem = model.get_layer("conv1_conv")
    except ValueError as exc:
        raise WeightsError(f"{model.name} is not a backbone from build_backbone (no 'conv1_conv' layer).") from exc
    if stem.use_bias:
        raise WeightsError(f"torchvision weights need the backbone built with layout='torch'; {model.name} "
                           "has the keras layout (biased convolutions, stride in the first 1x1).")


def convert_state_dict(state: dict, backbone_model: keras.Model, include_top: bool = False) -> keras.Model:
    """Load a torchvision/timm state dict into `backbone_model` (in place) and return the model.

    Args:
        state: dict of parameter names to arrays, e.g. from `read_state_dict`.
        backbone_model: model from `build_backbone(name, ..., layout="torch")`.
        include_top: bool, fill the "predictions" Dense from `fc`; the model must have been built
            with `include_top=True` (and 1000 classes for ImageNet files). Defaults to False.

    Raises:
        WeightsError: see `map_state_dict`; nothing is assigned unless every layer maps.
    """
    mapped = map_state_dict(state, backbone_model, include_top=include_top)
    for name, arrays in mapped.items():
        backbone_model.get_layer(name).set_weights(arrays)
    return backbone_model
