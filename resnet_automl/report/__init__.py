"""The evaluation report: report.json, report.md and a self-contained report.html with plots.

Owns: `build` (metrics on the test split into the three files), `plots` (matplotlib figures
through the object API, never switching the caller's backend), `model_card` (the model card,
Markdown, rendered from the report).
May import: `training.metrics`, `data` and below; never `serving` or `pipeline`.
Entry points: `build_report`, `render_model_card`.
"""
