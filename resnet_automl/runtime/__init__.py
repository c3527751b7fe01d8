"""The process a fit runs in: Keras backend, device and precision, console output, Ctrl-C.

Owns: `backend` (choose the Keras backend before Keras is imported), `device` (accelerators,
precision, data parallelism, compilation cache), `console` (library noise filters that are
undone on exit, and the package's logging to the console), `progress` (the live progress line),
`interrupts` (Ctrl-C that is never lost), `files` (atomic writes).
May import: `config`.
Entry points: `choose_backend`, `device.configure`, `LiveProgress`, `interrupts.check`.
"""
