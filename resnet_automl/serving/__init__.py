"""The TensorFlow edge: the TF Serving SavedModel, its fresh-process check, and prediction.

Owns: `export` (SavedModel with bytes and tensor signatures, warm-up file), `layout` (version
folders, signature names; no TensorFlow), `verify` (the fresh-process check), `predictor`
(`load_model` over an export), `tensorflow_process` (TensorFlow in a child process for a JAX parent).
May import: `modeling`, `weights`, `data` and below; never `report` or `pipeline`.
Entry points: `export_serving_model`, `verify_export`, `load_model`.
"""
