"""What a fit is asked to do: validated options, the budget, recipe files.

Owns: `schema` (one row per option: recipe section, value kind, CLI flag, help; validation,
recipe keys and CLI flags are all derived from it), `options.FitOptions` (every option of `fit`),
`budget.Budget`, `recipes` (TOML files that map one-to-one onto the options).
May import: `resnet_automl.errors` only (the lowest layer).
Entry points: `FitOptions`, `Budget`, `load_recipe`, `resolve_cli_options`.
"""
