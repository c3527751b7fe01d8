"""Decisions made before training, each made once: which backbone fits the budget, how long and at
what size to train, what the search varies.

Owns: `probe` (throughput and latency measured on this device), `selection` (the candidates'
estimates, verdicts and the choice), `schedule` (epochs per trial, final epochs, trial count, the
deadline margin), `training_plan` (`TrainingPlan` of one fit), `ranges` (freeze depths, optimizer,
learning-rate range, final data), `image_size` (the training side from the images).
May import: `modeling`, `weights`, `backbones`, `data`, `runtime`, `config`.
Entry points: `select_backbones`, `plan_training`, `auto_image_size`, `ranges`, `selection_plan`.
"""
