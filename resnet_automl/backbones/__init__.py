"""The networks, architecture only: the registry and one ResNet/ResNeXt builder.

Owns: `registry` (one `BackboneSpec` per name: params, GFLOPs, top-1, stages, weight sources),
`resnet` (the builder, freeze depth by stage), `layers` (grouped convolution, normalisation).
May import: `runtime`, `config`. Starting weights live in `resnet_automl.weights`.
Entry points: `get_spec`, `list_backbones`, `build_backbone`, `set_trainable_stages`.
"""
from resnet_automl.backbones.layers import GroupedConv2D, Normalize
from resnet_automl.backbones.registry import REGISTRY, STAGES, BackboneSpec, get_spec, list_backbones
from resnet_automl.backbones.resnet import (
           build_backbone,
           count_gflops,
           default_grouped_mode,
           layer_gflops,
           set_trainable_stages,
           stage_of,
)

__all__ = ["REGISTRY", "STAGES", "BackboneSpec", "GroupedConv2D", "Normalize", "build_backbone",
           "count_gflops", "default_grouped_mode", "get_spec", "layer_gflops",
           "list_backbones", "set_trainable_stages", "stage_of"]
