"""Decisions made before training: which backbone fits the budget, and how long to train.

Owns: `probe` (throughput and latency measured on this device), `selection` (the candidates'
estimates, verdicts and the choice), `schedule` (epochs per trial, final epochs, trial count).
May import: `modeling`, `weights`, `backbones`, `data`, `runtime`, `config`.
Entry points: `select_backbones`, `Plan`, `selection_plan`, `default_epochs`.
"""
