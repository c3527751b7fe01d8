"""`fit` itself: the run directory, the stages in order, resume, and what `fit` returns.

Owns: `fit` (the public `fit`, `export_run`), `run` (the stages in order over one run),
`context` (the `RunContext`, `RunData`, `TrainingPlan` and `BackboneChoice` the stages share),
`clock` (the wall-clock budget), one module per stage (`data_stage`, `selection_stage`,
`search_stage`, `final_stage`, `export_stage`, `report_stage`), `run_dir` (run.json, the run
lock, versions), `result` (`FitResult`), `evaluate` (score an export on a folder), `demo`.
May import: every layer but `cli`.
Entry points: `fit`, `export_run`, `evaluate_exported`, `run_demo`.
"""
