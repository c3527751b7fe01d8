"""Training loops and what they share: callbacks, learning-rate schedules, metrics.

Owns: `final` (the final training of the best configuration), `callbacks` (deadline, NaN stop,
best-epoch keeping, TensorBoard, epoch timing), `lr_schedule` (warm-up + cosine re-planned
each epoch), `timing` (epoch times without the compiling first epoch), `metrics` (scikit-learn
metrics and the calibration error).
May import: `modeling`, `weights`, `backbones`, `data`, `runtime`, `config`.
Entry points: `train_final`, `ReplannedCosine`, `classification_metrics`.
"""
