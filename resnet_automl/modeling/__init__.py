"""The classifier around a backbone, and what trains it besides the optimiser.

Owns: `classifier` (build and compile the classifier), `assembly` (the head around a backbone),
`starting_weights` (load a `WeightsSource` into a backbone), `head` (linear-probe head
initialisation), `augmentation` (on-device augmentation layers), `features` (the frozen-prefix
feature cache shared by search trials).
May import: `weights`, `backbones`, `data`, `runtime`, `config`.
Entry points: `build_classifier`, `compile_classifier`, `FeatureCache`, `with_augmentation`.
"""
