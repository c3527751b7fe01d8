"""`resnet-automl weights`: fetch or import torchvision ImageNet weights into the Keras cache.

    resnet-automl weights fetch resnet18             # download, verify, convert
    resnet-automl weights import resnet18 FILE.pth   # convert a file you downloaded elsewhere

Both write `<keras cache>/resnet_automl_<name>_imagenet.weights.h5` (the Keras cache is
`$KERAS_HOME/models` or `~/.keras/models`), which `weights="imagenet"` then loads offline.
Heavy modules are imported inside the handler so that `--help` answers at once.
"""
from __future__ import annotations

import argparse

#: The backbones with torchvision weights (kept here so that building the parser imports no TensorFlow).
TORCHVISION_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                         "resnext50_32x4d", "resnext101_32x8d")


def add_weights_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `weights` command with its `fetch` and `import` subcommands.

    Args:
        subparsers: the object returned by `ArgumentParser.add_subparsers()`.

    Returns:
        The `weights` parser (its parsed namespace has `command="weights"` and `weights_action`).
    """
    weights = subparsers.add_parser(
        "weights", help="fetch or import torchvision ImageNet weights for weights='imagenet'",
        description="Convert torchvision ImageNet weights into the Keras cache, where weights='imagenet' "
                    "finds them (ResNet-18/34 and ResNeXt; ResNet-50/101/152 with the torch layout).")
    actions = weights.add_subparsers(dest="weights_action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download the torchvision file, check its hash and convert it")
    fetch.add_argument("name", choices=TORCHVISION_BACKBONES, metavar="NAME",
                       help=f"backbone: {', '.join(TORCHVISION_BACKBONES)}")
    imported = actions.add_parser("import", help="convert a .pth or .safetensors state dict you already have")
    imported.add_argument("name", choices=TORCHVISION_BACKBONES, metavar="NAME",
                          help=f"backbone: {', '.join(TORCHVISION_BACKBONES)}")
    imported.add_argument("file", help="torchvision/timm state dict (.pth needs torch; .safetensors does not)")
    return weights


def run_weights_command(args) -> int:
    """Run `weights fetch NAME` or `weights import NAME FILE`; print the path written.

    Args:
        args: namespace from the parser of `add_weights_parser` (`weights_action`, `name`, `file`).

    Returns:
        0 on success; errors are raised as `WeightsError` for the CLI to report.
    """
    from pathlib import Path

    from resnet_automl.weights.imagenet_torchvision import (
        TORCHVISION_URLS,
        check_hash_prefix,
        fetch_torchvision,
        import_weights,
    )

    if args.weights_action == "fetch":
        source = fetch_torchvision(args.name)
    else:
        source = Path(args.file)
        if source.is_file() and source.name == TORCHVISION_URLS[args.name].rsplit("/", 1)[-1]:
            check_hash_prefix(source)  # still named as published ("resnet18-f37072fd.pth"): verify it
    path = import_weights(args.name, source)
    print(path)
    return 0
