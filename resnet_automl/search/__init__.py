"""The Keras Tuner search over freeze depth x learning rate (x backbone).

Owns: `hypermodel` (the `HyperModel`: space, build and fit of one trial), `tuner` (oracle choice,
the time-aware stop, per-trial timings, the trials table).
May import: `training`, `planning`, `modeling` and below.
Entry points: `ResNetHyperModel`, `make_tuner`, `best_trial`, `trials_table`.
"""
