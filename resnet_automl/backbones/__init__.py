"""Backbones: the registry, one ResNet/ResNeXt builder, freeze depth and weights."""
from .layers import GroupedConv2D, Normalize
from .registry import REGISTRY, STAGES, BackboneSpec, get_spec, list_backbones
from .resnet import build_backbone, count_gflops, default_grouped_mode, set_trainable_stages, stage_of
from .weights import copy_weights_by_name, keras_cache_dir, load_backbone_weights

__all__ = ["REGISTRY", "STAGES", "BackboneSpec", "GroupedConv2D", "Normalize", "build_backbone",
           "copy_weights_by_name", "count_gflops", "default_grouped_mode", "get_spec", "keras_cache_dir",
           "list_backbones", "load_backbone_weights", "set_trainable_stages", "stage_of"]
