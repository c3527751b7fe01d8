"""The Keras Tuner search over freeze depth x learning rate (x backbone).

Owns: `hypermodel` (the `HyperModel`: space, build and fit of one trial), `oracles` (the time-aware
stop, the opening trials, no effective configuration proposed twice), `tuner` (oracle choice,
per-trial timings and phases, the trials table), `phases` (a trial's seconds per phase).
May import: `training`, `planning`, `modeling` and below.
Entry points: `ResNetHyperModel`, `make_tuner`, `best_trial`, `trials_table`.
"""
