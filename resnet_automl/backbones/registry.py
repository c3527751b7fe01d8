"""The backbone registry: one spec per network, read by the builder, the selection and the CLI.

Numbers: parameters of the 1000-class model as torchvision counts them (weights, no BatchNorm
moving statistics); GFLOPs per 224 px image with multiply and add counted apart; ImageNet top-1 of
the weights this package loads (keras.applications for ResNet-50/101/152, torchvision V1,
converted by `backbones.convert`, otherwise).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from resnet_automl.errors import ConfigError

STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5")

KERAS_WEIGHTS = "keras.applications ImageNet file"
CIFAR_WEIGHTS = "none (CIFAR-style, trained from scratch on small images)"
#: Parameters (10-class head) and GFLOPs at 224 px of the CIFAR-style nets, counted on this builder.
CIFAR_PARAMS = {"resnet20": 272_474, "resnet20_lean": 272_762, "resnet32": 466_906, "resnet56": 855_770}
CIFAR_GFLOPS_224 = {"resnet20": 4.0, "resnet20_lean": 1.04, "resnet32": 6.774, "resnet56": 12.323}
TORCHVISION_WEIGHTS = "torchvision ImageNet file, converted on first use (a .pth needs torch)"


@dataclass(frozen=True)
class BackboneSpec:
    """Static description of one backbone.

    Attributes:
        name: str, registry key, e.g. "resnet50".
        block: "basic" or "bottleneck".
        depths: tuple of 4 ints, residual blocks in stages conv2..conv5 (0: the stage is absent).
        cardinality: int, groups of the 3x3 convolution (1 for ResNet, 32 for ResNeXt).
        base_width: int, width per group (64 for ResNet, 4 or 8 for ResNeXt).
        base_channels: int, channels of the stem and of conv2 (64; 16 for the CIFAR-style nets; 8
            for the tiny test model).
        widths: tuple of 4 ints or None, planes of stages conv2..conv5; None: base_channels x (1, 2, 4, 8).
        strides: tuple of 4 ints, stride of the first block of stages conv2..conv5. Default (1, 2, 2, 2).
        stem: "imagenet" (7x7/2 convolution and 3x3/2 max-pool: 32x downsampling) or "cifar" (one 3x3/1
            convolution, no pool, as the CIFAR ResNets of He et al. 2016: for inputs up to 64 px).
        layout: "keras" (v1: stride in the first 1x1, biased convolutions, as keras.applications)
            or "torch" (v1.5: stride in the 3x3, no conv bias, explicit zero padding).
        params: int, published parameter count of the 1000-class model (torchvision convention).
        gflops_224: float, GFLOPs per image at 224 px.
        imagenet_top1: float or None, published ImageNet top-1 (%) of `weights_source`.
        weights_source: str, where `weights="imagenet"` comes from.
        test_only: bool, True for the tiny variant that tests use; never picked by "auto".
    """

    name: str
    block: str
    depths: tuple
    cardinality: int = 1
    base_width: int = 64
    base_channels: int = 64
    widths: tuple | None = None
    strides: tuple = (1, 2, 2, 2)
    stem: str = "imagenet"
    layout: str = "torch"
    params: int = 0
    gflops_224: float = 0.0
    imagenet_top1: float | None = None
    weights_source: str = TORCHVISION_WEIGHTS
    test_only: bool = False

    @property
    def preprocessing(self) -> str:
        """"caffe" (BGR, ImageNet mean subtracted) for keras files, else "torch" (mean/std)."""
        return "caffe" if self.layout == "keras" else "torch"

    @property
    def has_imagenet_weights(self) -> bool:
        """ImageNet-stem backbones (keras.applications or torchvision files); not the CIFAR-style or test ones."""
        return not self.test_only and self.stem == "imagenet"

    @property
    def stage_widths(self) -> tuple:
        """Planes of stages conv2..conv5."""
        return self.widths or tuple(self.base_channels * 2 ** stage for stage in range(4))

    def gflops(self, image_size: int) -> float:
        """GFLOPs per image at `image_size` px (convolution cost scales with the pixel count)."""
        return self.gflops_224 * (image_size / 224.0) ** 2

    def to_dict(self) -> dict:
        row = asdict(self)
        row["depths"] = list(self.depths)
        row["widths"] = list(self.stage_widths)
        row["strides"] = list(self.strides)
        row["stages"] = list(STAGES)
        row["preprocessing"] = self.preprocessing
        return row


_SPECS = [
    BackboneSpec("resnet18", "basic", (2, 2, 2, 2), params=11_689_512, gflops_224=3.63, imagenet_top1=69.76),
    BackboneSpec("resnet34", "basic", (3, 4, 6, 3), params=21_797_672, gflops_224=7.33, imagenet_top1=73.31),
    BackboneSpec("resnet50", "bottleneck", (3, 4, 6, 3), layout="keras", params=25_557_032,
                 gflops_224=7.72, imagenet_top1=74.9, weights_source=KERAS_WEIGHTS),
    BackboneSpec("resnet101", "bottleneck", (3, 4, 23, 3), layout="keras", params=44_549_160,
                 gflops_224=15.2, imagenet_top1=76.4, weights_source=KERAS_WEIGHTS),
    BackboneSpec("resnet152", "bottleneck", (3, 8, 36, 3), layout="keras", params=60_192_808,
                 gflops_224=22.65, imagenet_top1=76.6, weights_source=KERAS_WEIGHTS),
    BackboneSpec("resnext50_32x4d", "bottleneck", (3, 4, 6, 3), cardinality=32, base_width=4,
                 params=25_028_904, gflops_224=8.46, imagenet_top1=77.62),
    BackboneSpec("resnext101_32x8d", "bottleneck", (3, 4, 23, 3), cardinality=32, base_width=8,
                 params=88_791_336, gflops_224=32.83, imagenet_top1=79.31),
    # CIFAR-style ResNets (He et al. 2016, section 4.2): 3x3 stem, three stages of 16/32/64 planes
    # (conv3..conv5 here; conv2 is empty), for small images from random initialisation. Parameters
    # and GFLOPs of the 10-class model; GFLOPs scale with the pixel count like the others'.
    BackboneSpec("resnet20", "basic", (0, 3, 3, 3), base_channels=16, widths=(16, 16, 32, 64), strides=(1, 1, 2, 2),
                 stem="cifar", params=CIFAR_PARAMS["resnet20"], gflops_224=CIFAR_GFLOPS_224["resnet20"],
                 weights_source=CIFAR_WEIGHTS),
    # ResNet-20 whose first stage starts with a stride of 2 (the stem stays at full resolution): a
    # quarter of the FLOPs and 288 more parameters (a projection shortcut). For machines on which the
    # time budget holds too few ResNet-20 steps: 2.1x faster per epoch in a fit on 2 cores (4.8 s
    # against 10.0 s for 850 images at 32 px), about a point lower after the same 60 epochs
    # (fm10-100 seed 1: 0.821 against 0.830).
    BackboneSpec("resnet20_lean", "basic", (0, 3, 3, 3), base_channels=16, widths=(16, 16, 32, 64),
                 strides=(1, 2, 2, 2), stem="cifar", params=CIFAR_PARAMS["resnet20_lean"],
                 gflops_224=CIFAR_GFLOPS_224["resnet20_lean"], weights_source=CIFAR_WEIGHTS),
    BackboneSpec("resnet32", "basic", (0, 5, 5, 5), base_channels=16, widths=(16, 16, 32, 64), strides=(1, 1, 2, 2),
                 stem="cifar", params=CIFAR_PARAMS["resnet32"], gflops_224=CIFAR_GFLOPS_224["resnet32"],
                 weights_source=CIFAR_WEIGHTS),
    BackboneSpec("resnet56", "basic", (0, 9, 9, 9), base_channels=16, widths=(16, 16, 32, 64), strides=(1, 1, 2, 2),
                 stem="cifar", params=CIFAR_PARAMS["resnet56"], gflops_224=CIFAR_GFLOPS_224["resnet56"],
                 weights_source=CIFAR_WEIGHTS),
    BackboneSpec("tiny_resnet", "basic", (1, 1, 1, 1), base_channels=8, params=143_312, gflops_224=0.054,
                 imagenet_top1=None, weights_source="none (test-only model)", test_only=True),
]
REGISTRY = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> BackboneSpec:
    """Look up a backbone by name; raise `ConfigError` listing the valid names otherwise."""
    key = str(name).strip().lower().replace("-", "_")
    if key in REGISTRY:
        return REGISTRY[key]
    raise ConfigError(f"The `backbone` argument must be one of {sorted(REGISTRY)} (or 'auto'). "
                      f"Received: backbone={name!r}. Run `resnet-automl backbones` for the table.")


def list_backbones(include_test_only: bool = False) -> list:
    """The registry as a list of dicts (name, block, depths, params, gflops_224, ...)."""
    return [spec.to_dict() for spec in _SPECS if include_test_only or not spec.test_only]
