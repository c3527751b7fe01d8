"""`fit` itself: the run directory, the stages in order, resume, and what `fit` returns.

Owns: `fit` (the public `fit` and the CLI's entry), `run` (the stages in order over one run),
`search_stage` and `final_stage` (the search and the final training), `run_dir` (run.json,
atomic updates, versions), `result` (`FitResult`), `evaluate` (score an export on a folder),
`demo` (the bundled demo run).
May import: every layer but `cli`.
Entry points: `fit`, `fit_from_cli`, `export_run`, `evaluate_exported`, `run_demo`.
"""
