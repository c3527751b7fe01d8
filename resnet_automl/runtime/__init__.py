"""The process a fit runs in: Keras backend, device and precision, console output, Ctrl-C.

Owns: `backend` (choose the Keras backend before Keras is imported, load it quietly), `device`
(accelerators, precision, data parallelism, out-of-memory errors), `compile_cache` (JAX's
persistent cache), `seeding`, `quiet` (library noise filters that are undone on exit), `console`
(the package's logging to the console), `progress` (the live progress line), `interrupts` (Ctrl-C
that is never lost), `files` (atomic writes), `run_folder` (`RunLayout`: the run folder's paths),
`run_record` (`RunRecord`: run.json, typed and validated).
May import: `config`.
Entry points: `choose_backend`, `device.configure`, `LiveProgress`, `interrupts.check`.
"""
