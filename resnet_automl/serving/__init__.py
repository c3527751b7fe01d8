"""The TensorFlow edge: the TF Serving SavedModel, the LiteRT and ONNX files, their fresh-process
checks, and prediction.

Owns: `savedmodel` (the SavedModel: export, layout, fresh-process check, the TensorFlow child of a
JAX run), `edge` (LiteRT and ONNX: formats, converters, runtimes, checks), `inference` (`load_model`
over any export, top-k rows, predictions of folders to CSV/JSONL).
May import: `modeling`, `weights`, `data` and below; never `report` or `pipeline`.
Entry points: `savedmodel.export.export_serving_model`, `savedmodel.verify.verify_export`,
`inference.predictor.load_model`.
"""
