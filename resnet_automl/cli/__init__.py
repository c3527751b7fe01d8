"""The `resnet-automl` command line: argument parsing, the console handler, exit codes.

Owns: `main` (every subcommand), `weights` (fetch or import ImageNet files).
May import: every layer below (pipeline, serving, config, runtime, ...); nothing imports it.
Entry points: `resnet_automl.cli.main.main` (the console script), `resnet_automl.cli.weights`.
"""
