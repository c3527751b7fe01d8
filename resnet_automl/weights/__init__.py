"""Where a backbone's starting weights come from, and the weight files this package writes.

Owns: `source` (the `weights` argument resolved once into a `WeightsSource`), `imagenet_keras`
and `imagenet_torchvision` (ImageNet files: download, hash check, conversion), `convert`
(torchvision state dicts into our layout), `loading` (ImageNet or a file into a backbone),
`io` (atomic, self-describing `.weights.h5` files), `cache` (the Keras cache folder).
May import: `backbones`, `data`, `runtime`, `config`.
Entry points: `resolve_weights`, `load_backbone_weights`, `save_weights`, `load_weights`.
"""
